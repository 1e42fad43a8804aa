/* elect_primary: one primary among many instances of an application.
 *
 *   elect_primary ENDPOINTS GROUP MY_ADDRESS
 *
 * Each instance campaigns for GROUP with its own address as the value
 * (lc_campaign blocks until elected, first come first served). The winner
 * serves while lc_session_held says it is still primary, passing its token
 * with every write; on SIGTERM or SIGINT it resigns (lc_resign), so the
 * next candidate is elected at once rather than after the TTL. A primary
 * that loses its lease (partition, pause) stops serving and exits: its
 * supervisor restarts it as a candidate. Anyone can ask who the primary is
 * with lc_leader (or `lockctl leader GROUP`). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lockclient.h"

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* lc_campaign asks between tries whether to give up. */
static bool cancelled(void *arg)
{
	(void)arg;
	return stopping != 0;
}

static void on_try(int rv, uint64_t holder, void *arg)
{
	(void)arg;
	if (rv == LC_EHELD || rv == LC_ETIMEOUT)
		fprintf(stderr, "standby: primary is session %" PRIu64 "\n",
			holder);
	else
		fprintf(stderr, "campaign: %s; retrying\n", lc_strerror(rv));
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s ENDPOINTS GROUP MY_ADDRESS\n",
			argv[0]);
		return 2;
	}
	const char *group = argv[2], *me = argv[3];
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	lc_client *c;
	int rv = lc_open(argv[1], NULL, &c);
	if (rv != LC_OK) {
		fprintf(stderr, "lc_open: %s\n", lc_strerror(rv));
		return 1;
	}
	lc_sess *s;
	if ((rv = lc_session_open(c, NULL, &s)) != LC_OK) {
		lc_close(c);
		return 1;
	}

	lc_campaign_options co;
	lc_campaign_options_init(&co);
	co.cancelled = cancelled; /* SIGTERM while standing by: give up */
	co.progress = on_try;
	lc_lease l;
	rv = lc_campaign(s, group, me, strlen(me), 3000, &co, &l);
	if (rv != LC_OK) {
		fprintf(stderr, "not elected: %s\n", lc_strerror(rv));
		lc_session_close(s);
		lc_close(c);
		return rv == LC_ECANCELED ? 0 : 1;
	}
	printf("primary of %s as %s, token %" PRIu64 "\n", group, me, l.token);
	fflush(stdout);

	int status = 0;
	while (!stopping) {
		if (!lc_session_held(s, group)) {
			fprintf(stderr, "no longer primary: stopping\n");
			status = 1;
			break;
		}
		/* Serve: every write downstream carries l.token. */
		sleep_ms(100);
	}
	if (stopping) {
		rv = lc_resign(s, group);
		fprintf(stderr, "resigned: %s\n", lc_strerror(rv));
	}
	lc_session_close(s);
	lc_close(c);
	return status;
}
