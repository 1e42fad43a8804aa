/* fenced_store: a downstream service that fences writes by token.
 *
 *   fenced_store ENDPOINTS NAME
 *
 * The store keeps, per lease name, the highest fencing token it has seen,
 * and accepts a write only if the writer's token is >= it. Tokens grow with
 * every grant, so once the store has seen the new holder's token, a late
 * write from an old holder (one that was paused, partitioned, or simply
 * slow, and still believes it holds the lease) is refused even though it
 * arrives after the new holder's. Optionally (--check), it also asks the
 * cell with lc_check whether the token is still the current one, which
 * catches a stale writer even before the new holder's first write.
 *
 * The demo runs both holders in one process with two clients (two
 * sessions): A takes NAME and writes; A "pauses" and its lease is released
 * behind its back (standing in for expiry); B takes NAME and writes; A's
 * late write is refused. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lockclient.h"

/* ---- the store: one fencing record per name ------------------------------ */

#define STORE_NAMES 16

typedef struct store {
	lc_client *checker; /* NULL: fence by token order only */
	struct {
		char name[LC_NAME_BYTES_MAX + 1];
		uint64_t highest;
		char data[64];
	} rec[STORE_NAMES];
	unsigned n;
} store;

/* true: the write is accepted and token becomes the highest seen. */
static bool store_write(store *st, const char *name, uint64_t token,
			const char *data)
{
	unsigned i;
	for (i = 0; i < st->n && strcmp(st->rec[i].name, name) != 0; i++)
		;
	if (i == st->n) {
		if (st->n == STORE_NAMES)
			return false;
		snprintf(st->rec[i].name, sizeof st->rec[i].name, "%s", name);
		st->rec[i].highest = 0;
		st->n++;
	}
	if (token < st->rec[i].highest) {
		printf("store: REFUSED %s from token %" PRIu64 " (seen %" PRIu64
		       ")\n",
		       name, token, st->rec[i].highest);
		return false;
	}
	if (st->checker != NULL) {
		/* Any replica may answer a check, and the store's client has
		 * not necessarily seen the grant yet: a replica a little
		 * behind says "not current" for a brand-new token. Ask again
		 * briefly before refusing (refusing is always the safe side;
		 * the token order above is what fences). */
		bool current = false;
		int rv = LC_OK;
		for (int try = 0; try < 5 && !current; try++) {
			if (try > 0)
				nanosleep(&(struct timespec){0, 50000000L},
					  NULL);
			rv = lc_check(st->checker, name, token, &current);
		}
		if (rv != LC_OK || !current) {
			printf("store: REFUSED %s from token %" PRIu64
			       " (the cell says it is not current)\n",
			       name, token);
			return false;
		}
	}
	st->rec[i].highest = token;
	snprintf(st->rec[i].data, sizeof st->rec[i].data, "%s", data);
	printf("store: accepted %s = '%s' from token %" PRIu64 "\n", name, data,
	       token);
	return true;
}

/* ---- the demo ------------------------------------------------------------ */

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s ENDPOINTS NAME [--check]\n",
			argv[0]);
		return 2;
	}
	const char *name = argv[2];
	bool check = argc > 3 && strcmp(argv[3], "--check") == 0;
	lc_client *a, *b;
	if (lc_open(argv[1], NULL, &a) != LC_OK ||
	    lc_open(argv[1], NULL, &b) != LC_OK) {
		fprintf(stderr, "lc_open failed\n");
		return 1;
	}
	store st;
	memset(&st, 0, sizeof st);
	st.checker = check ? b : NULL;
	int status = 1;

	lc_lease la, lb;
	int rv = lc_acquire(a, name, 5000, 5000, NULL, 0, &la);
	if (rv != LC_OK) {
		fprintf(stderr, "A: %s (%s)\n", lc_strerror(rv),
			lc_last_error());
		goto out;
	}
	printf("A holds %s with token %" PRIu64 "\n", name, la.token);
	store_write(&st, name, la.token, "from A");

	/* A stalls here. Its lease ends without A knowing (here: released on
	 * its behalf; in life: it expired during the pause). */
	lc_release(a, name, la.token);
	rv = lc_acquire(b, name, 5000, 5000, NULL, 0, &lb);
	if (rv != LC_OK) {
		fprintf(stderr, "B: %s (%s)\n", lc_strerror(rv),
			lc_last_error());
		goto out;
	}
	printf("B holds %s with token %" PRIu64 "\n", name, lb.token);
	store_write(&st, name, lb.token, "from B");

	/* A wakes up and sends the write it had prepared: refused. */
	bool late = store_write(&st, name, la.token, "late write from A");
	status = late ? 1 : 0;
	printf("%s\n", late ? "BUG: the stale write was accepted"
			    : "the stale write was refused");
	lc_release(b, name, lb.token);
out:
	lc_close(a);
	lc_close(b);
	return status;
}
