/* The limits that live in different layers and must agree, related at
 * compile time: this file does not build if they drift apart. The client
 * library is public and includes no cell header, so the check lives here,
 * where both are in view. */
#include <criterion/criterion.h>

#include "ld_limits.h"
#include "lease.h"
#include "lockclient.h"

/* What a client may send is what a cell accepts. */
_Static_assert(LC_NAME_BYTES_MAX == LS_NAME_BYTES_MAX,
	       "lease names: library and cell disagree");
_Static_assert(LC_VALUE_BYTES_MAX == LS_VALUE_BYTES_MAX,
	       "lease values: library and cell disagree");
_Static_assert(LC_REASON_BYTES_MAX == LS_REASON_BYTES_MAX,
	       "revoke reasons: library and cell disagree");
_Static_assert(LC_SESSION_LEASES_MAX == LS_LEASES_PER_SESSION_MAX,
	       "leases per session: library and cell disagree");
_Static_assert(LC_URL_BYTES_MAX == LD_URL_BYTES_MAX,
	       "endpoint URLs: library and cell disagree");
/* Whatever the cell lists, the library can hold. */
_Static_assert(LC_REPLICA_IDS == LD_REPLICA_IDS, "replica ids disagree");
_Static_assert(LC_RENEW_SESSIONS_MAX == LD_RENEW_SESSIONS_MAX,
	       "sessions in one RENEW: library and cell disagree");
_Static_assert(LC_MEMBERS_MAX >= LD_REPLICAS_MAX,
	       "the library lists fewer members than a cell may have");
_Static_assert(LC_ENDPOINTS_MAX >= LD_REPLICAS_MAX,
	       "the library knows fewer endpoints than a cell may have");

Test(limits, agree)
{
	cr_assert(LC_NAME_BYTES_MAX == LS_NAME_BYTES_MAX);
}
