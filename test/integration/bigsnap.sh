#!/usr/bin/env bash
# A replica catches up from a snapshot larger than the 65 MiB a peer
# message may carry (issue 9). 70,000 leases with 1 KiB values make a
# snapshot of about 90 MiB; a replica that was down while the ledger moved
# on, past what the others keep of it, receives it in 1 MiB chunks, checks
# it whole and installs it, and then serves every lease.
# $3 is tools/lockbench, which holds the leases.
. "$(dirname "$0")/lib.sh"
BENCH=$(realpath "$3")
LEASES=70000
CAP=$((65 * 1024 * 1024))
BENCH_PID=
stop_bench() {
	if [[ -n $BENCH_PID ]]; then
		kill -KILL "$BENCH_PID" 2>/dev/null || true
		wait "$BENCH_PID" 2>/dev/null || true
	fi
	BENCH_PID=
}
trap 'rc=$?; stop_bench; (exit $rc); cleanup' EXIT

# The largest bytes= of event $1 in r$2's log (0: none).
most_bytes() {
	{ grep "event=$1 " "$T/r$2.log" || true; } |
		sed -n 's/.* bytes=\([0-9]*\).*/\1/p' | sort -n | tail -n 1 | sed 's/^$/0/'
}

# A TICK decree every 10 ms: the ledger moves on while the leases are
# only held, so a snapshot of the whole table comes within seconds (at the
# latest point the in-memory log allows) instead of minutes.
EXTRA=(--tick-ms 10)
say "start 3 replicas; stop one that does not lead"
start_all
lead=$(wait_leader)
behind=$(((lead + 1) % 3))
stop_replica "$behind" TERM

say "hold $LEASES leases with 1 KiB values"
"$BENCH" -e "$CLIENTS" --mode renew -n "$LEASES" -c 100 --ttl-ms 60000 \
	-d 900 --value-bytes 1024 >"$T/bench.out" 2>&1 &
BENCH_PID=$!
deadline=$((SECONDS + 300))
while :; do
	line=$(LOCKD_PROBE_TIMEOUT_MS=2000 probe "$CLIENTS" status 2>/dev/null) || true
	leases=$(kv "$line" leases)
	[[ -n $leases && $leases -ge $LEASES ]] && break
	kill -0 "$BENCH_PID" 2>/dev/null || fail "lockbench stopped: $(tail -n 5 "$T/bench.out")"
	((SECONDS < deadline)) || fail "the cell holds ${leases:-?} leases, not $LEASES"
	sleep 1
done
say "held: $line"

say "a snapshot above 65 MiB is saved, past what r$behind has"
deadline=$((SECONDS + 120))
while :; do
	big=0
	for i in 0 1 2; do
		[[ $i == "$behind" ]] && continue
		b=$(most_bytes snapshot_saved "$i")
		((b > big)) && big=$b
	done
	((big > CAP)) && break
	((SECONDS < deadline)) || fail "no snapshot above $CAP bytes was saved (largest $big)"
	sleep 1
done
say "saved a snapshot of $big bytes"

say "r$behind returns: it installs the snapshot from chunks"
start_replica "$behind"
deadline=$((SECONDS + 120))
while :; do
	got=$(most_bytes snapshot_installed "$behind")
	((got > CAP)) && break
	((SECONDS < deadline)) || fail "r$behind installed no snapshot above $CAP bytes (${got:-0})"
	sleep 1
done
lead=$(wait_leader 30)
line=$(probe "${CLIENT_URLS[$lead]}" status) || fail "$line"
wait_applied "$behind" "$(kv "$line" commit)" 60
line=$(probe "${CLIENT_URLS[$behind]}" status) || fail "$line"
[[ $(kv "$line" leases) -ge $LEASES ]] || fail "r$behind holds too few leases: $line"
say "r$behind installed $got bytes and serves: $line"
stop_bench
say "ok"
