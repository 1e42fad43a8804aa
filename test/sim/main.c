/* lockd-sim: the command line around sim_run. See test/sim/meson.build for
 * how CI calls it; the last line printed is the summary CI parses. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "paxos.h"
#include "sim.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lockd-sim --seeds A-B [--replicas N] [--faults "
		"none|default|heavy]\n"
		"                 [--workload lease|counter] [--mutant NAME]\n"
		"                 [--until-violation] [--quiet] [--verbose] "
		"[--drift-ppm N]\n"
		"                 [--members] [--driver round|core] [--corpus "
		"DIR]\n"
		"                 [--expect-chunks]  (fail unless snapshots "
		"were installed from\n"
		"                 many chunks, some lost and some damaged on "
		"the way)\n"
		"                 [--snapshot-capture inline|async|random] "
		"[--expect-captures]\n"
		"                 (snapshots taken in the step, or captured "
		"off "
		"the loop as\n"
		"                 the daemon's child does; expect: fail unless "
		"captures came back,\n"
		"                 some failed and some were lost)\n"
		"       lockd-sim --replay SEED [--trace] [same options]\n"
		"       lockd-sim --list-mutants\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int parse_range(const char *s, uint64_t *a, uint64_t *b)
{
	char buf[64];
	if (!s || strlen(s) >= sizeof buf)
		return -1;
	strcpy(buf, s);
	char *dash = strchr(buf, '-');
	if (!dash)
		return parse_u64(buf, a) || (*b = *a, 0);
	*dash = '\0';
	if (parse_u64(buf, a) || parse_u64(dash + 1, b) || *b < *a)
		return -1;
	return 0;
}

static double wall_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	sim_opts o = {.workload = SIM_WORKLOAD_LEASE,
		      .nreplicas = 3,
		      .faults = SIM_FAULTS_DEFAULT,
		      .mutant = PX_MUTANT_NONE,
		      .drift_ppm_max = -1};
	uint64_t first = 0, last = 0;
	bool have_seeds = false, trace = false, until = false, quiet = false,
	     verbose = false, expect_chunks = false, expect_captures = false;
	const char *mutant = NULL;
	const char *driver = NULL, *capture = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t u;
		if (!strcmp(a, "--list-mutants")) {
			for (int m = 1; m < PX_MUTANT_COUNT; m++)
				puts(px_mutant_name((ld_mutant)m));
			return 0;
		} else if (!strcmp(a, "--seeds")) {
			if (parse_range(v, &first, &last))
				goto bad;
			have_seeds = true;
			i++;
		} else if (!strcmp(a, "--replay")) {
			if (parse_u64(v, &first))
				goto bad;
			last = first;
			have_seeds = true;
			i++;
		} else if (!strcmp(a, "--replicas")) {
			if (parse_u64(v, &u) || u < 1 || u > LD_REPLICAS_MAX)
				goto bad;
			o.nreplicas = (uint32_t)u;
			i++;
		} else if (!strcmp(a, "--faults")) {
			if (v && !strcmp(v, "none"))
				o.faults = SIM_FAULTS_NONE;
			else if (v && !strcmp(v, "default"))
				o.faults = SIM_FAULTS_DEFAULT;
			else if (v && !strcmp(v, "heavy"))
				o.faults = SIM_FAULTS_HEAVY;
			else
				goto bad;
			i++;
		} else if (!strcmp(a, "--workload")) {
			if (v && !strcmp(v, "lease"))
				o.workload = SIM_WORKLOAD_LEASE;
			else if (v && !strcmp(v, "counter"))
				o.workload = SIM_WORKLOAD_COUNTER;
			else
				goto bad;
			i++;
		} else if (!strcmp(a, "--mutant")) {
			if (!v)
				goto bad;
			mutant = v;
			i++;
		} else if (!strcmp(a, "--drift-ppm")) {
			if (parse_u64(v, &u) || u > 100000)
				goto bad;
			o.drift_ppm_max = (int32_t)u;
			i++;
		} else if (!strcmp(a, "--corpus")) {
			if (!v)
				goto bad;
			o.corpus = v;
			i++;
		} else if (!strcmp(a, "--driver")) {
			if (!v || (strcmp(v, "round") && strcmp(v, "core")))
				goto bad;
			driver = v;
			i++;
		} else if (!strcmp(a, "--members")) {
			o.members = true;
		} else if (!strcmp(a, "--trace")) {
			trace = true;
		} else if (!strcmp(a, "--until-violation")) {
			until = true;
		} else if (!strcmp(a, "--quiet")) {
			quiet = true;
		} else if (!strcmp(a, "--expect-chunks")) {
			expect_chunks = true;
		} else if (!strcmp(a, "--expect-captures")) {
			expect_captures = true;
		} else if (!strcmp(a, "--snapshot-capture")) {
			if (!v)
				goto bad;
			if (!strcmp(v, "inline"))
				o.capture = SIM_CAPTURE_INLINE;
			else if (!strcmp(v, "async"))
				o.capture = SIM_CAPTURE_ASYNC;
			else if (!strcmp(v, "random"))
				o.capture = SIM_CAPTURE_RANDOM;
			else
				goto bad;
			capture = v;
			i++;
		} else if (!strcmp(a, "--verbose")) {
			verbose = true;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else {
			goto bad;
		}
		continue;
	bad:
		fprintf(stderr, "lockd-sim: bad argument: %s%s%s\n", a,
			v ? " " : "", v ? v : "");
		usage(stderr);
		return 2;
	}
	if (!have_seeds) {
		usage(stderr);
		return 2;
	}
	if (mutant) {
		o.mutant = px_mutant_parse(mutant);
		if (o.mutant == PX_MUTANT_COUNT || o.mutant == PX_MUTANT_NONE) {
			fprintf(stderr,
				"lockd-sim: unknown mutant %s (see "
				"--list-mutants)\n",
				mutant);
			return 2;
		}
	}
	/* The round runs lease nodes; the counter workload has bare
	 * replicas, stepped by the core alone. */
	o.driver = o.workload == SIM_WORKLOAD_LEASE ? SIM_DRIVER_ROUND
						    : SIM_DRIVER_CORE;
	if (driver && !strcmp(driver, "core"))
		o.driver = SIM_DRIVER_CORE;
	else if (driver && o.workload == SIM_WORKLOAD_COUNTER) {
		fprintf(stderr,
			"lockd-sim: --driver round needs the lease "
			"workload (the counter workload has no round)\n");
		return 2;
	}
	if (trace)
		o.trace = stdout;

	uint64_t seeds = 0, decrees = 0, violations = 0, first_violation = 0,
		 events = 0;
	uint64_t grants = 0, expiries = 0, fenced = 0, changes = 0, wipes = 0,
		 disk_faults = 0;
	uint64_t chunks = 0, chunks_lost = 0, chunks_damaged = 0,
		 snap_installs = 0, chunks_most = 0;
	uint64_t captures = 0, captures_failed = 0, captures_lost = 0;
	int64_t closest = INT64_MAX;
	bool any = false;
	double t0 = wall_seconds();
	for (uint64_t seed = first;; seed++) {
		sim_result r;
		sim_run(&o, seed, &r);
		seeds++;
		decrees += r.decrees;
		events += r.events;
		grants += r.grants;
		expiries += r.expiries;
		fenced += r.fenced;
		changes += r.changes;
		wipes += r.wipes;
		chunks += r.snap_chunks;
		chunks_lost += r.snap_chunks_lost;
		chunks_damaged += r.snap_chunks_damaged;
		snap_installs += r.snap_installs;
		captures += r.captures;
		captures_failed += r.captures_failed;
		captures_lost += r.captures_lost;
		if (r.snap_chunks_most > chunks_most)
			chunks_most = r.snap_chunks_most;
		disk_faults += r.disk_faults;
		if (r.closest_us < closest)
			closest = r.closest_us;
		if (verbose)
			printf("seed %" PRIu64 ": decrees=%" PRIu64
			       " commands=%" PRIu64 " acks=%" PRIu64
			       " grants=%" PRIu64 " expiries=%" PRIu64
			       " releases=%" PRIu64 " revokes=%" PRIu64
			       " writes=%" PRIu64 " stale=%" PRIu64
			       " fenced=%" PRIu64 " drift=%" PRIu32
			       "ppm closest=%.3fms"
			       " crashes=%" PRIu64 " wipes=%" PRIu64
			       " forged=%" PRIu64 " partitions=%" PRIu64
			       " msgs=%" PRIu64 " lost=%" PRIu64
			       " events=%" PRIu64 " heal=%.3fs end=%.3fs\n",
			       seed, r.decrees, r.commands, r.acks, r.grants,
			       r.expiries, r.releases, r.revokes, r.writes,
			       r.stale_writes, r.fenced, r.drift_ppm,
			       r.closest_us == INT64_MAX
				       ? 0.0
				       : (double)r.closest_us / 1000.0,
			       r.crashes, r.wipes, r.forged, r.partitions,
			       r.msgs_sent, r.msgs_lost, r.events,
			       (double)r.heal_us / 1e6, (double)r.end_us / 1e6);
		if (r.violated) {
			violations++;
			if (!any)
				first_violation = seed;
			any = true;
			if (!quiet) {
				printf("seed %" PRIu64 ": VIOLATION %s: %s\n",
				       seed, r.property, r.detail);
				char drift[32] = "";
				if (o.drift_ppm_max >= 0)
					snprintf(drift, sizeof drift,
						 " --drift-ppm %" PRId32,
						 o.drift_ppm_max);
				printf("seed %" PRIu64
				       ": replay: lockd-sim --replay %" PRIu64
				       " --replicas %" PRIu32
				       " --faults %s%s%s%s%s%s%s%s%s --trace\n",
				       seed, seed, o.nreplicas,
				       sim_faults_name(o.faults),
				       o.members ? " --members" : "",
				       o.driver == SIM_DRIVER_CORE &&
						       o.workload ==
							       SIM_WORKLOAD_LEASE
					       ? " --driver core"
					       : "",
				       o.workload == SIM_WORKLOAD_COUNTER
					       ? " --workload counter"
					       : "",
				       mutant ? " --mutant " : "",
				       mutant ? mutant : "", drift,
				       capture ? " --snapshot-capture " : "",
				       capture ? capture : "");
			}
			if (until)
				break;
		}
		fflush(stdout);
		if (seed == last)
			break;
	}
	double secs = wall_seconds() - t0;
	if (secs <= 0)
		secs = 1e-9;
	printf("sim: seeds=%" PRIu64 " decrees=%" PRIu64 " violations=%" PRIu64
	       " seconds=%.2f seeds_per_s=%.1f decrees_per_s=%.0f "
	       "decrees_per_seed=%.1f"
	       " events=%" PRIu64 " replicas=%" PRIu32
	       " faults=%s workload=%s driver=%s mutant=%s"
	       " grants=%" PRIu64 " expiries=%" PRIu64 " fenced=%" PRIu64
	       " closest_ms=%.3f wipes=%" PRIu64 " disk_faults=%" PRIu64
	       " member_changes=%" PRIu64 " snapshot_installs=%" PRIu64
	       " chunks=%" PRIu64 " chunks_lost=%" PRIu64
	       " chunks_damaged=%" PRIu64 " chunks_most=%" PRIu64
	       " captures=%" PRIu64 " captures_failed=%" PRIu64
	       " captures_lost=%" PRIu64 " first_violation_seed=",
	       seeds, decrees, violations, secs, (double)seeds / secs,
	       (double)decrees / secs, (double)decrees / (double)seeds, events,
	       o.nreplicas, sim_faults_name(o.faults),
	       sim_workload_name(o.workload), sim_driver_name(o.driver),
	       mutant ? mutant : "none", grants, expiries, fenced,
	       closest == INT64_MAX ? 0.0 : (double)closest / 1000.0, wipes,
	       disk_faults, changes, snap_installs, chunks, chunks_lost,
	       chunks_damaged, chunks_most, captures, captures_failed,
	       captures_lost);
	if (any)
		printf("%" PRIu64 "\n", first_violation);
	else
		printf("none\n");
	/* The mechanism, not only its safety: snapshots crossed in many
	 * chunks, and lost and damaged ones were asked for again. */
	if (expect_chunks && (snap_installs == 0 || chunks_most < 16 ||
			      chunks_lost == 0 || chunks_damaged == 0)) {
		printf("sim: --expect-chunks: no snapshot went the whole way "
		       "in many chunks with some lost and some damaged\n");
		return 1;
	}
	/* Snapshots captured off the loop came back, and the core got over
	 * ones that failed and ones that never came. */
	if (expect_captures &&
	    (captures == 0 || captures_failed == 0 || captures_lost == 0)) {
		printf("sim: --expect-captures: no snapshot captured off the "
		       "loop came back, or none failed, or none was lost\n");
		return 1;
	}
	return violations ? 1 : 0;
}
