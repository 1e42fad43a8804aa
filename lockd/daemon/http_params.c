/* The HTTP API's request fields (http_params.h). */
#include "http_params.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const char *const ld_field_names[LD_F_COUNT] = {
	"ttl_ms", "wait_ms", "value",    "token",       "reason",
	"seq",    "session", "position", "consistency", "prefix",
	"after",  "limit",   "from",
};

static int param_set(ld_params *p, const char *key, size_t klen, const char *v,
		     size_t vlen, uint32_t allowed, char *why, size_t whylen)
{
	for (int f = 0; f < LD_F_COUNT; f++) {
		if (strlen(ld_field_names[f]) != klen ||
		    memcmp(ld_field_names[f], key, klen) != 0)
			continue;
		if (!(allowed & LD_FB(f))) {
			snprintf(why, whylen,
				 "this endpoint takes no field '%s' (README, "
				 "HTTP API)",
				 ld_field_names[f]);
			return -1;
		}
		if (p->has[f]) {
			snprintf(why, whylen, "field '%s' is given twice",
				 ld_field_names[f]);
			return -1;
		}
		p->has[f] = true;
		p->v[f] = v;
		p->len[f] = vlen;
		return 0;
	}
	snprintf(why, whylen, "unknown field '%.*s' (README, HTTP API)",
		 klen > 64 ? 64 : (int)klen, key);
	return -1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) (and '+' as a space when plus) into the arena;
 * NULL on a bad escape. */
char *ld_params_pct_decode(ld_params *p, const char *s, size_t n, bool plus,
			   size_t *out_len)
{
	char *o = p->arena + p->arena_n, *d = o;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int h, l;
			if (i + 2 >= n)
				return NULL;
			if ((h = hexval(s[i + 1])) < 0 ||
			    (l = hexval(s[i + 2])) < 0)
				return NULL;
			*d++ = (char)(h << 4 | l);
			i += 2;
		} else {
			*d++ = plus && s[i] == '+' ? ' ' : s[i];
		}
	}
	*d++ = '\0';
	*out_len = (size_t)(d - o) - 1;
	p->arena_n += (size_t)(d - o);
	return o;
}

int ld_params_query(ld_params *p, const char *q, uint32_t allowed, char *why,
		    size_t whylen)
{
	while (*q != '\0') {
		const char *amp = strchr(q, '&');
		size_t n = amp ? (size_t)(amp - q) : strlen(q);
		if (n > 0) {
			const char *eq = memchr(q, '=', n);
			size_t kn = eq ? (size_t)(eq - q) : n;
			size_t klen, vlen;
			char *k = ld_params_pct_decode(p, q, kn, true, &klen);
			char *v =
				eq ? ld_params_pct_decode(p, eq + 1, n - kn - 1,
							  true, &vlen)
				   : ld_params_pct_decode(p, "", 0, true,
							  &vlen);
			if (k == NULL || v == NULL) {
				snprintf(
					why, whylen,
					"the query string has a bad %%-escape");
				return -1;
			}
			if (param_set(p, k, klen, v, vlen, allowed, why,
				      whylen) != 0)
				return -1;
		}
		if (amp == NULL)
			break;
		q = amp + 1;
	}
	return 0;
}

/* A strict parser for the flat JSON objects the API takes: one object of
 * string keys to strings, whole numbers, true or false; no nesting, no
 * duplicates, nothing after it but white space. */
typedef struct jp {
	const char *s;
	size_t n, i;
	ld_params *p;
	char *why;
	size_t whylen;
} jp;

static int jp_fail(jp *j, const char *what)
{
	snprintf(j->why, j->whylen,
		 "malformed JSON body at byte %zu: %s (the body is one flat "
		 "object, as {\"ttl_ms\":10000})",
		 j->i, what);
	return -1;
}

static void jp_ws(jp *j)
{
	while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' ||
			       j->s[j->i] == '\n' || j->s[j->i] == '\r'))
		j->i++;
}

static void put_utf8(char **d, uint32_t cp)
{
	char *o = *d;
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xc0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xe0 | cp >> 12);
		*o++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (char)(0xf0 | cp >> 18);
		*o++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*o++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	}
	*d = o;
}

static int jp_hex4(jp *j, uint32_t *out)
{
	if (j->n - j->i < 4)
		return jp_fail(j, "a \\u escape wants 4 hex digits");
	uint32_t v = 0;
	for (int k = 0; k < 4; k++) {
		int h = hexval(j->s[j->i + (size_t)k]);
		if (h < 0)
			return jp_fail(j, "a \\u escape wants 4 hex digits");
		v = v << 4 | (uint32_t)h;
	}
	j->i += 4;
	*out = v;
	return 0;
}

/* A string at j->i (its opening quote), decoded into the arena. */
static int jp_string(jp *j, const char **out, size_t *len)
{
	if (j->i >= j->n || j->s[j->i] != '"')
		return jp_fail(j, "expected a string");
	j->i++;
	char *o = j->p->arena + j->p->arena_n, *d = o;
	for (;;) {
		if (j->i >= j->n)
			return jp_fail(j, "a string is not closed");
		unsigned char c = (unsigned char)j->s[j->i++];
		if (c == '"')
			break;
		if (c < 0x20)
			return jp_fail(j, "a control character in a string "
					  "(escape it)");
		if (c != '\\') {
			*d++ = (char)c;
			continue;
		}
		if (j->i >= j->n)
			return jp_fail(j, "a string is not closed");
		c = (unsigned char)j->s[j->i++];
		switch (c) {
		case '"':
		case '\\':
		case '/':
			*d++ = (char)c;
			break;
		case 'b':
			*d++ = '\b';
			break;
		case 'f':
			*d++ = '\f';
			break;
		case 'n':
			*d++ = '\n';
			break;
		case 'r':
			*d++ = '\r';
			break;
		case 't':
			*d++ = '\t';
			break;
		case 'u': {
			uint32_t cp, lo;
			if (jp_hex4(j, &cp) != 0)
				return -1;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return jp_fail(j, "a lone low surrogate");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (j->n - j->i < 2 || j->s[j->i] != '\\' ||
				    j->s[j->i + 1] != 'u')
					return jp_fail(j,
						       "a lone high surrogate");
				j->i += 2;
				if (jp_hex4(j, &lo) != 0)
					return -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return jp_fail(j,
						       "a lone high surrogate");
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
			}
			put_utf8(&d, cp);
			break;
		}
		default:
			return jp_fail(j, "an unknown escape in a string");
		}
	}
	*d++ = '\0';
	*out = o;
	*len = (size_t)(d - o) - 1;
	j->p->arena_n += (size_t)(d - o);
	return 0;
}

int ld_params_json(ld_params *p, const char *s, size_t n, uint32_t allowed,
		   char *why, size_t whylen)
{
	jp j = {s, n, 0, p, why, whylen};
	jp_ws(&j);
	if (j.i == j.n)
		return 0; /* no body: {} */
	if (s[j.i] != '{')
		return jp_fail(&j, "expected an object");
	j.i++;
	jp_ws(&j);
	if (j.i < j.n && s[j.i] == '}') {
		j.i++;
	} else {
		for (;;) {
			const char *k, *v;
			size_t kl, vl;
			jp_ws(&j);
			if (jp_string(&j, &k, &kl) != 0)
				return -1;
			jp_ws(&j);
			if (j.i >= j.n || s[j.i] != ':')
				return jp_fail(&j, "expected ':'");
			j.i++;
			jp_ws(&j);
			if (j.i >= j.n)
				return jp_fail(&j, "expected a value");
			char c = s[j.i];
			if (c == '"') {
				if (jp_string(&j, &v, &vl) != 0)
					return -1;
			} else if (c >= '0' && c <= '9') {
				size_t st = j.i;
				while (j.i < j.n && s[j.i] >= '0' &&
				       s[j.i] <= '9')
					j.i++;
				if (j.i < j.n &&
				    (s[j.i] == '.' || s[j.i] == 'e' ||
				     s[j.i] == 'E'))
					return jp_fail(&j, "numbers are whole "
							   "numbers here");
				char *o = p->arena + p->arena_n;
				memcpy(o, s + st, j.i - st);
				o[j.i - st] = '\0';
				p->arena_n += j.i - st + 1;
				v = o;
				vl = j.i - st;
			} else if (j.n - j.i >= 4 &&
				   memcmp(s + j.i, "true", 4) == 0) {
				j.i += 4;
				v = "true";
				vl = 4;
			} else if (j.n - j.i >= 5 &&
				   memcmp(s + j.i, "false", 5) == 0) {
				j.i += 5;
				v = "false";
				vl = 5;
			} else if (c == '-') {
				return jp_fail(&j, "numbers are not negative "
						   "here");
			} else {
				return jp_fail(&j, "expected a string, a whole "
						   "number, true or false (no "
						   "objects, arrays or null)");
			}
			if (param_set(p, k, kl, v, vl, allowed, why, whylen) !=
			    0)
				return -1;
			jp_ws(&j);
			if (j.i < j.n && s[j.i] == ',') {
				j.i++;
				continue;
			}
			if (j.i < j.n && s[j.i] == '}') {
				j.i++;
				break;
			}
			return jp_fail(&j, "expected ',' or '}'");
		}
	}
	jp_ws(&j);
	if (j.i != j.n)
		return jp_fail(&j, "something follows the object");
	return 0;
}

/* A field as a whole number up to max (JSON number, or a string of
 * digits: 64-bit values go as strings). */
int ld_params_u64(const ld_params *p, ld_field f, uint64_t max, uint64_t *out,
		  char *why, size_t whylen)
{
	const char *v = p->v[f];
	size_t n = p->len[f];
	uint64_t x = 0;
	bool ok = n > 0 && n <= 20;
	for (size_t i = 0; ok && i < n; i++) {
		if (v[i] < '0' || v[i] > '9') {
			ok = false;
			break;
		}
		unsigned d = (unsigned)(v[i] - '0');
		if (x > (UINT64_MAX - d) / 10) {
			ok = false;
			break;
		}
		x = x * 10 + d;
	}
	if (!ok || x > max) {
		snprintf(why, whylen,
			 "field '%s' wants a whole number from 0 to %" PRIu64
			 ", not '%.*s'",
			 ld_field_names[f], max, n > 40 ? 40 : (int)n, v);
		return -1;
	}
	*out = x;
	return 0;
}
