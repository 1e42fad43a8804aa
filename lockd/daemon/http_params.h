/* The HTTP API's request fields (http_api.h): from the query string and
 * from a JSON body, each at most once, checked strictly so that bad input
 * gets a sentence that says what is wrong and where.
 *
 * The JSON accepted is one flat object of string keys to strings, whole
 * numbers (not negative, no fraction or exponent), true or false: no
 * nesting, arrays or null, no duplicate or unknown keys, nothing after the
 * object but white space. Strings are decoded (escapes, \uXXXX with
 * surrogate pairs, to UTF-8); numbers are kept as their digits. */
#ifndef LD_HTTP_PARAMS_H
#define LD_HTTP_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ld_field {
	LD_F_TTL_MS,
	LD_F_WAIT_MS,
	LD_F_VALUE,
	LD_F_TOKEN,
	LD_F_REASON,
	LD_F_SEQ,
	LD_F_SESSION,
	LD_F_POSITION,
	LD_F_CONSISTENCY,
	LD_F_PREFIX,
	LD_F_AFTER,
	LD_F_LIMIT,
	LD_F_FROM,
	LD_F_COUNT,
} ld_field;

/* The fields' names, as requests spell them. */
extern const char *const ld_field_names[LD_F_COUNT];

/* A set of fields, as a mask. */
#define LD_FB(f) (1u << (f))

/* What a request gave: each field's value (len bytes, NUL-terminated; it
 * may hold a NUL of its own) in the arena, which the caller allocates with
 * room for twice the URI and the body, plus 64 bytes, and frees. */
typedef struct ld_params {
	bool has[LD_F_COUNT];
	const char *v[LD_F_COUNT];
	size_t len[LD_F_COUNT];
	char *arena;
	size_t arena_n;
} ld_params;

/* Percent-decodes s[0..n) into the arena ('+' as a space when plus);
 * NULL on a bad escape. *out_len is the decoded length. */
char *ld_params_pct_decode(ld_params *p, const char *s, size_t n, bool plus,
			   size_t *out_len);

/* The query string q (after '?') and the JSON body s[0..n) (empty: no
 * fields). Fields outside allowed (a mask), unknown or repeated ones are
 * refused. 0, or -1 with a sentence in why. */
int ld_params_query(ld_params *p, const char *q, uint32_t allowed, char *why,
		    size_t whylen);
int ld_params_json(ld_params *p, const char *s, size_t n, uint32_t allowed,
		   char *why, size_t whylen);

/* Field f as a whole number from 0 to max (JSON number or a string of
 * digits: 64-bit values travel as strings). 0, or -1 with a sentence. */
int ld_params_u64(const ld_params *p, ld_field f, uint64_t max, uint64_t *out,
		  char *why, size_t whylen);

#endif
