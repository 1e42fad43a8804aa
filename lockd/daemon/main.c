/* lockd: one replica of a lease cell. See server.h for the event loop and
 * options.h for the flags. Exit codes: 0 after SIGTERM/SIGINT, or once the
 * replica was removed from the cell and has handed over; 1 when the
 * replica cannot start, 2 for a bad configuration, 3 when it was removed
 * from the cell before this start (its ledger says so, or --join found its
 * id among the removed): its id is never used again. Failing writes stall
 * the replica rather than end it (server.h). */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ldlog.h"
#include "options.h"
#include "server.h"

/* The lowest port the kernel hands out as a connection's source port. A
 * port it chose for bind(0) is one of those, so an outgoing connection of
 * another test could take it between our pick and lockd's listen (seen in
 * CI as "Address in use"): free_ports picks below this range instead. */
static unsigned ephemeral_low(void)
{
	unsigned lo = 32768, hi = 60999;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f != NULL) {
		if (fscanf(f, "%u %u", &lo, &hi) != 2)
			lo = 32768;
		fclose(f);
	}
	return lo;
}

/* Binds n loopback TCP sockets at once (so the ports differ) on random
 * ports below the ephemeral range (or port 0 if that range starts too
 * low), prints the ports, one per line, and closes them. */
static int free_ports(const char *arg)
{
	char *end;
	long n = strtol(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || n < 1 || n > 64) {
		fprintf(stderr, "lockd: --free-ports wants a count of 1-64\n");
		return 2;
	}
	int fds[64];
	unsigned ports[64];
	int rc = 0;
	long i;
	unsigned lo = ephemeral_low();
	unsigned base = lo > 12000 + 1024 ? lo - 12000 : 0;
	uint64_t seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^
			(uint64_t)time(NULL);
	for (i = 0; i < n; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_addr.s_addr =
						 htonl(INADDR_LOOPBACK)};
		socklen_t len = sizeof sa;
		int b = -1;
		for (int tries = 0;
		     fds[i] >= 0 && base != 0 && tries < 200 && b != 0;
		     tries++) {
			seed = seed * 6364136223846793005ull +
			       1442695040888963407ull;
			sa.sin_port = htons(
				(uint16_t)(base + (seed >> 33) % (lo - base)));
			b = bind(fds[i], (struct sockaddr *)&sa, sizeof sa);
		}
		if (b != 0 && fds[i] >= 0) {
			sa.sin_port = 0;
			b = bind(fds[i], (struct sockaddr *)&sa, sizeof sa);
		}
		if (fds[i] < 0 || b != 0 ||
		    getsockname(fds[i], (struct sockaddr *)&sa, &len) != 0) {
			fprintf(stderr, "lockd: cannot find a free port: %s\n",
				strerror(errno));
			rc = 1;
			if (fds[i] >= 0)
				close(fds[i]);
			break;
		}
		ports[i] = ntohs(sa.sin_port);
	}
	for (long j = 0; j < i; j++) {
		if (rc == 0)
			printf("%u\n", ports[j]);
		close(fds[j]);
	}
	return rc;
}

struct sig_ctx {
	sigset_t set;
	ld_evq *q;
};

/* A shutdown that takes longer than this ends the process anyway. If the
 * store is closed by then, what hangs is nng's socket close (nng 1.5.2 can
 * hang in nng_close after hostile handshakes: nanomsg/nng#1543): nothing
 * acknowledged can be lost, so that exit is clean (0), with a log line.
 * Otherwise the exit status says it was not clean (1). */
#define SHUTDOWN_S_MAX 5

/* Every thread blocks SIGTERM and SIGINT; this one takes them and stops
 * the loop, which then shuts down on its own thread. A second signal, or a
 * shutdown past SHUTDOWN_S_MAX, exits at once. */
static void *sig_thread(void *arg)
{
	struct sig_ctx *sc = arg;
	int sig;
	if (sigwait(&sc->set, &sig) != 0)
		return NULL;
	ld_log("info", "signal", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
	ld_evq_stop(sc->q);
	uint64_t deadline = ld_mono_us() + SHUTDOWN_S_MAX * 1000000ull;
	for (;;) {
		uint64_t now = ld_mono_us();
		if (now >= deadline) {
			if (atomic_load(&ld_server_store_closed)) {
				ld_log("warn", "exit",
				       "reason=\"nng socket close hung "
				       "(nanomsg/nng#1543); the store is "
				       "closed "
				       "and every write durable\"");
				_exit(0);
			}
			ld_log("warn", "exit",
			       "reason=\"shutdown took over %d s\"",
			       SHUTDOWN_S_MAX);
			break;
		}
		uint64_t left = deadline - now;
		struct timespec ts = {.tv_sec = (time_t)(left / 1000000u),
				      .tv_nsec =
					      (long)(left % 1000000u) * 1000};
		if (sigtimedwait(&sc->set, NULL, &ts) >= 0) {
			ld_log("warn", "exit", "reason=\"second signal\"");
			break;
		}
		/* EINTR (a sanitizer stopping the world at exit) or EAGAIN:
		 * the clock decides. */
	}
	_exit(1);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			ld_options_usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("lockd %s\n", LOCKD_VERSION);
			return 0;
		}
		if (strcmp(argv[i], "--free-ports") == 0)
			return i + 1 < argc ? free_ports(argv[i + 1])
					    : free_ports("");
	}

	static ld_options opt;
	char err[512];
	if (ld_options_parse(argc, argv, &opt, err, sizeof err) != 0) {
		fprintf(stderr, "lockd: %s\n", err);
		return 2;
	}
	ld_log_init((int32_t)opt.id);
	/* Election timeouts are drawn from this seed: replicas started
	 * together must not draw the same ones. */
	opt.node.paxos.seed ^= ld_mono_us() ^ ((uint64_t)getpid() << 32) ^
			       ((uint64_t)time(NULL) << 16);

	/* Before any thread exists, so nng's threads inherit the mask. */
	static struct sig_ctx sc;
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
	signal(SIGPIPE, SIG_IGN);

	ld_server *s;
	int orv = ld_server_open(&opt, &s, err, sizeof err);
	if (orv == LD_SERVER_REMOVED) {
		fprintf(stderr, "lockd: %s\n", err);
		ld_log("warn", "stop", "reason=removed");
		return 3;
	}
	if (orv != 0) {
		fprintf(stderr, "lockd: %s\n", err);
		ld_log("error", "stop", "reason=\"cannot start\"");
		return 1;
	}
	sc.q = ld_server_queue(s);
	pthread_t th;
	if (pthread_create(&th, NULL, sig_thread, &sc) != 0) {
		fprintf(stderr, "lockd: cannot start the signal thread\n");
		ld_server_close(s);
		return 1;
	}
	pthread_detach(th);
	int rc = ld_server_run(s);
	ld_server_close(s);
	return rc;
}
