/* The HTTP API's request fields (lockd/daemon/http_params.h): the strict
 * JSON parser and the query string take what the README says and refuse
 * everything else with a sentence that says what and where. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "http_params.h"

#define ALL ((1u << LD_F_COUNT) - 1)

static ld_params P;
static char WHY[512];

static void fresh(size_t in_len)
{
	free(P.arena);
	memset(&P, 0, sizeof P);
	P.arena = malloc(2 * in_len + 64);
	cr_assert_not_null(P.arena);
	WHY[0] = '\0';
}

static int json(const char *s)
{
	fresh(strlen(s));
	return ld_params_json(&P, s, strlen(s), ALL, WHY, sizeof WHY);
}

static int query(const char *q)
{
	fresh(strlen(q));
	return ld_params_query(&P, q, ALL, WHY, sizeof WHY);
}

static void teardown(void)
{
	free(P.arena);
	memset(&P, 0, sizeof P);
}

/* Refused, with a sentence containing want. */
static void refused(int rv, const char *want)
{
	cr_assert_eq(rv, -1, "accepted; wanted a refusal with '%s'", want);
	cr_assert_not_null(strstr(WHY, want), "'%s' does not say '%s'", WHY,
			   want);
}

TestSuite(http_params, .fini = teardown);

Test(http_params, a_flat_object_of_strings_numbers_and_booleans)
{
	cr_assert_eq(json(" {\"ttl_ms\": 10000, \"value\":\"a\\\"b\\\\c\\n\","
			  "\"prefix\":true}\r\n"),
		     0, "%s", WHY);
	uint64_t ttl;
	cr_assert_eq(ld_params_u64(&P, LD_F_TTL_MS, UINT32_MAX, &ttl, WHY,
				   sizeof WHY),
		     0);
	cr_assert_eq(ttl, 10000);
	cr_assert_eq(P.len[LD_F_VALUE], 6);
	cr_assert_eq(memcmp(P.v[LD_F_VALUE], "a\"b\\c\n", 6), 0);
	cr_assert_str_eq(P.v[LD_F_PREFIX], "true");
	cr_assert(!P.has[LD_F_TOKEN]);
}

Test(http_params, an_empty_body_or_object_gives_no_fields)
{
	cr_assert_eq(json(""), 0);
	cr_assert_eq(json("  "), 0);
	cr_assert_eq(json("{}"), 0);
	cr_assert_eq(json(" { } "), 0);
	for (int f = 0; f < LD_F_COUNT; f++)
		cr_assert(!P.has[f]);
}

Test(http_params, unicode_escapes_and_surrogate_pairs_become_utf8)
{
	cr_assert_eq(json("{\"value\":\"\\u00e9\\u20ac\\ud83d\\ude00/\\/\"}"),
		     0, "%s", WHY);
	cr_assert_eq(P.len[LD_F_VALUE], 2 + 3 + 4 + 2);
	cr_assert_eq(memcmp(P.v[LD_F_VALUE],
			    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80//", 11),
		     0);
	/* A NUL is kept, with its length: the request decoder refuses it in
	 * a name or a reason, a value may hold it. */
	cr_assert_eq(json("{\"value\":\"a\\u0000b\"}"), 0);
	cr_assert_eq(P.len[LD_F_VALUE], 3);
}

Test(http_params, malformed_json_says_what_and_at_which_byte)
{
	refused(json("{\"ttl_ms\":1000,}"),
		"malformed JSON body at byte 15: expected a string");
	refused(json("{\"ttl_ms\" 1000}"), "at byte 10: expected ':'");
	refused(json("[1]"), "at byte 0: expected an object");
	refused(json("{\"a\":{}}"), "no objects, arrays or null");
	refused(json("{\"value\":null}"), "no objects, arrays or null");
	refused(json("{\"ttl_ms\":1.5}"), "whole numbers");
	refused(json("{\"ttl_ms\":1e3}"), "whole numbers");
	refused(json("{\"ttl_ms\":-1}"), "not negative");
	refused(json("{\"value\":\"a"), "not closed");
	refused(json("{\"value\":\"a\tb\"}"), "control character");
	refused(json("{\"value\":\"\\x\"}"), "unknown escape");
	refused(json("{\"value\":\"\\u12\"}"), "4 hex digits");
	refused(json("{\"value\":\"\\ud800\"}"), "lone high surrogate");
	refused(json("{\"value\":\"\\udc00\"}"), "lone low surrogate");
	refused(json("{\"ttl_ms\":1} x"), "something follows the object");
	refused(json("{\"ttl_ms\":1"), "expected ',' or '}'");
	refused(json("{"), "expected a string");
}

Test(http_params, unknown_repeated_and_unwanted_fields_are_refused)
{
	refused(json("{\"colour\":\"red\"}"), "unknown field 'colour'");
	refused(json("{\"ttl_ms\":1,\"ttl_ms\":2}"),
		"field 'ttl_ms' is given twice");
	fresh(32);
	refused(ld_params_json(&P, "{\"token\":\"1\"}", 13, LD_FB(LD_F_TTL_MS),
			       WHY, sizeof WHY),
		"this endpoint takes no field 'token'");
	/* The query and the body are one set of fields. */
	fresh(64);
	cr_assert_eq(ld_params_query(&P, "ttl_ms=5", ALL, WHY, sizeof WHY), 0);
	refused(ld_params_json(&P, "{\"ttl_ms\":5}", 12, ALL, WHY, sizeof WHY),
		"given twice");
}

Test(http_params, the_query_string_is_percent_decoded)
{
	cr_assert_eq(query("prefix=db%2Fa+b&after=&limit=2&&from=7"), 0, "%s",
		     WHY);
	cr_assert_str_eq(P.v[LD_F_PREFIX], "db/a b");
	cr_assert(P.has[LD_F_AFTER]);
	cr_assert_eq(P.len[LD_F_AFTER], 0);
	cr_assert_str_eq(P.v[LD_F_LIMIT], "2");
	cr_assert_str_eq(P.v[LD_F_FROM], "7");
	refused(query("prefix=%zz"), "bad %-escape");
	refused(query("prefix=%2"), "bad %-escape");
	refused(query("wait=1"), "unknown field 'wait'");
}

Test(http_params, numbers_are_whole_in_range_and_may_be_strings)
{
	uint64_t v;
	cr_assert_eq(json("{\"token\":\"18446744073709551615\"}"), 0);
	cr_assert_eq(
		ld_params_u64(&P, LD_F_TOKEN, UINT64_MAX, &v, WHY, sizeof WHY),
		0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(json("{\"token\":\"18446744073709551616\"}"), 0);
	refused(ld_params_u64(&P, LD_F_TOKEN, UINT64_MAX, &v, WHY, sizeof WHY),
		"field 'token' wants a whole number from 0 to "
		"18446744073709551615, not '18446744073709551616'");
	cr_assert_eq(json("{\"wait_ms\":60001}"), 0);
	refused(ld_params_u64(&P, LD_F_WAIT_MS, 60000, &v, WHY, sizeof WHY),
		"from 0 to 60000, not '60001'");
	cr_assert_eq(json("{\"ttl_ms\":\"\"}"), 0);
	refused(ld_params_u64(&P, LD_F_TTL_MS, 100, &v, WHY, sizeof WHY),
		"wants a whole number");
	cr_assert_eq(json("{\"ttl_ms\":\" 5\"}"), 0);
	refused(ld_params_u64(&P, LD_F_TTL_MS, 100, &v, WHY, sizeof WHY),
		"wants a whole number");
}

Test(http_params, every_prefix_of_a_valid_body_is_refused_or_parsed_safely)
{
	/* No read past the end, under ASan: every cut of a body. */
	const char *body = "{\"value\":\"\\ud83d\\ude00\\n\",\"ttl_ms\":12,"
			   "\"prefix\":false}";
	size_t n = strlen(body);
	for (size_t k = 0; k < n; k++) {
		char *cut = malloc(k + 1);
		memcpy(cut, body, k);
		fresh(k);
		int rv = ld_params_json(&P, cut, k, ALL, WHY, sizeof WHY);
		cr_assert(k == 0 ? rv == 0 : rv == -1, "cut at %zu: %d", k, rv);
		free(cut);
	}
	cr_assert_eq(json(body), 0, "%s", WHY);
}
