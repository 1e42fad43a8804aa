#!/usr/bin/env bash
# Issue 14 item 9, on a real cell whose replicas may each open 160 files:
#  - 2,000 GETs with known_position 2^64-1 pipelined on one connection,
#    which closes while they wait, several times: nng's reap thread must not
#    wedge (it did when the connection held every client context: each
#    closed connection then leaked its socket), so the leader still takes
#    connections and its open file descriptors come back to where they were;
#  - a leader near its fd limit stops leading, says why, and another
#    replica leads (writes go on); it serves again once it has fewer.
. "$(dirname "$0")/lib.sh"

say "start 3 replicas, at most 160 open files each"
for i in 0 1 2; do (ulimit -n 160 && start_replica "$i"); done
lead=$(wait_leader)
say "leader is r$lead"
LPID=$(cat "$T/r$lead.pid")
fds() { ls "/proc/$LPID/fd" | wc -l; }
probe "${CLIENT_URLS[$lead]}" churn 10 >/dev/null || fail "churn before"
fd0=$(fds)
say "leader has $fd0 open files"

for hold in 700 300 500 100 900 200 600 400 800 150 50 250; do
	line=$(timeout 15 "$PROBE" "${CLIENT_URLS[$lead]}" parkclose 2000 \
		"$hold") || fail "parkclose held ${hold} ms: ${line:-no end}"
	line=$(timeout 15 "$PROBE" "${CLIENT_URLS[$lead]}" churn 10) ||
		fail "after parked GETs held ${hold} ms: $line"
	n=$(fds)
	for _ in $(seq 20); do
		((n <= fd0 + 6)) && break
		sleep 0.1
		n=$(fds)
	done
	echo "held ${hold} ms: $line fds=$n"
	((n <= fd0 + 6)) ||
		fail "closed connections leak sockets: $n open, $fd0 before"
done

say "120 connections held open to the leader"
probe "${CLIENT_URLS[$lead]}" hold 120 5000 >"$T/hold.out" &
hold_pid=$!
for _ in $(seq 50); do
	grep -q 'event=fds_exhausted' "$T/r$lead.log" && break
	sleep 0.1
done
grep 'event=fds_exhausted' "$T/r$lead.log" || fail "no fds_exhausted line"
line=$(LOCKD_PROBE_TIMEOUT_MS=2000 probe "${CLIENT_URLS[$lead]}" get x) &&
	fail "an unfit replica served a read: $line"
echo "$line"
[[ $line == *"file descriptors open"* ]] || fail "no reason given: $line"
new=-1
for _ in $(seq 60); do
	for i in 0 1 2; do
		[[ $i == "$lead" ]] && continue
		line=$(LOCKD_PROBE_TIMEOUT_MS=1000 probe "${CLIENT_URLS[$i]}" status) ||
			continue
		[[ $(kv "$line" role) == leader ]] && new=$i
	done
	((new >= 0)) && break
	sleep 0.1
done
((new >= 0)) || fail "no other replica leads"
say "r$new leads"
# It handed over (PX_EV_RESIGN): the new leader took over well inside an
# election timeout (300 ms) of the fds_exhausted line (both logs stamp the
# machine's monotonic clock as mono=).
t_ex=$(grep -m1 'event=fds_exhausted' "$T/r$lead.log" | sed 's/.* mono=\([0-9.]*\) .*/\1/')
t_new=$(awk -v t="$t_ex" -v id="$new" '
	/event=leader_change/ && $0 ~ ("leader=" id "( |$)") {
		split($2, a, "="); if (a[2] + 0 >= t + 0) { print a[2]; exit } }' \
	"$T/r$new.log")
[[ -n $t_new ]] || fail "no leader_change on r$new after $t_ex"
gap_ms=$(awk -v a="$t_ex" -v b="$t_new" 'BEGIN { printf "%d", (b - a) * 1000 }')
echo "handover took $gap_ms ms"
((gap_ms < 250)) || fail "the unfit leader did not hand over: $gap_ms ms"
grep -q "event=leader_change leader=$new" "$T/r$lead.log" ||
	grep -q "event=leader_change leader=-1" "$T/r$lead.log" ||
	fail "the unfit leader still says it leads"
tok=$(acquire_ok after 9001 1 5000)
echo "granted token $tok"
wait "$hold_pid"
cat "$T/hold.out"
for _ in $(seq 50); do
	grep -q 'event=fds_recovered' "$T/r$lead.log" && break
	sleep 0.1
done
grep 'event=fds_recovered' "$T/r$lead.log" || fail "no fds_recovered line"
lead=$(wait_leader)
line=$(probe "$CLIENTS" get after) || fail "get: $line"
[[ $(kv "$line" found) == 1 ]] || fail "get after: $line"
say "ok"
