#!/usr/bin/env bash
# The operator's view (issue 16), on a cell that tools/dev-cluster starts:
# - dev-cluster start waits for replicas whose exec is slow (it once said
#   "r2 exited" of a replica it had just forked: its cmdline was still the
#   script's);
# - log lines stamp ts= in UTC (RFC 3339, microseconds) and mono= beside;
# - /metrics counts leader changes (lockd_leader_changes_total) and says
#   whether a leader is known (lockd_has_leader);
# - lockctl status: version, uptime and snapshot columns, no negative lag,
#   and a leader that did not answer is never shown as if it had.
. "$(dirname "$0")/lib.sh"
LOCKCTL=$(realpath "$3")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

# A directory, and a lockd wrapper, with no "lockd" in their paths: while
# the wrapper sleeps, a replica's /proc/PID/cmdline names neither.
D=$(mktemp -d /tmp/devc.XXXXXX)
W=$D/slowstart
printf '#!/bin/sh\nsleep 0.5\nexec %q "$@"\n' "$LOCKD" >"$W"
chmod +x "$W"
dc() { LOCKD_BIN=$W LOCKD_EXTRA_FLAGS="--grace-ms 500" "$ROOT/tools/dev-cluster" "$@"; }
# cleanup (lib.sh) exits with the status it finds: the script's, not rm's.
trap 'rc=$?; dc stop "$D" >/dev/null 2>&1 || true; rm -rf "$D"; (exit $rc); cleanup' EXIT
lc() { "$LOCKCTL" -e "$(cat "$D/endpoints")" "$@"; }

say "dev-cluster start with a lockd slow to exec"
dc start "$D" >"$T/start.out" 2>&1 || fail "dev-cluster start: $(cat "$T/start.out")"
grep -q "^ready:" "$T/start.out" || fail "dev-cluster start: $(cat "$T/start.out")"
dc status "$D" >"$T/status.out"
[[ $(grep -c " pid " "$T/status.out") -eq 3 ]] || fail "dev-cluster status: $(cat "$T/status.out")"

say "log lines: ts= in UTC, mono= beside it"
line=$(grep -m1 'event=start' "$D/r0.log")
[[ $line =~ ^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\ mono=[0-9]+\.[0-9]{6}\ level= ]] ||
	fail "log line: $line"
year=$(date -u +%Y)
[[ $line == "ts=$year-"* || $line == "ts=$((year - 1))-"* ]] || fail "ts is not today's: $line"

# metric URL NAME: its value on one replica's /metrics ("" if no answer).
metric() {
	http_get "$1" /metrics 2>/dev/null | sed -n "s/^$2 \\([0-9-]*\\)\\r*\$/\\1/p"
}
mapfile -t HTTP < <(tr , '\n' <"$D/http")

say "/metrics: lockd_has_leader and lockd_leader_changes_total"
lead=-1
for _ in $(seq 100); do
	for i in 0 1 2; do
		[[ $(metric "${HTTP[$i]}" 'lockd_role{role="leader"}') == 1 ]] && lead=$i
	done
	((lead >= 0)) && break
	sleep 0.1
done
((lead >= 0)) || fail "no replica says it leads"
for i in 0 1 2; do
	for _ in $(seq 100); do
		[[ $(metric "${HTTP[$i]}" lockd_has_leader) == 1 ]] && break
		sleep 0.1
	done
	[[ $(metric "${HTTP[$i]}" lockd_has_leader) == 1 ]] || fail "r$i: lockd_has_leader is not 1"
	[[ $(metric "${HTTP[$i]}" lockd_leader_changes_total) -ge 1 ]] ||
		fail "r$i: lockd_leader_changes_total $(metric "${HTTP[$i]}" lockd_leader_changes_total)"
done

say "lockctl status: version, uptime, snapshot; lag never negative"
lc status >"$T/st.out" 2>"$T/st.err" || fail "status: $(cat "$T/st.err")"
head -n 1 "$T/st.out" | grep "VERSION.*UPTIME.*SNAPSHOT" >/dev/null || fail "status header: $(head -n 1 "$T/st.out")"
version=$("$LOCKD" --version | awk '{print $2}')
for _ in $(seq 10); do
	lc acquire "ops/$RANDOM" --ttl 5s >/dev/null 2>&1 &
	lc status -o json >"$T/st.json" 2>/dev/null || fail "status -o json"
	python3 - "$T/st.json" "$version" <<'PY' || fail "status json: $(cat "$T/st.json")"
import json, sys
rows = [r for r in json.load(open(sys.argv[1])) if r["up"]]
assert len(rows) == 3, rows
for r in rows:
    assert r["version"] == sys.argv[2], r
    assert r["uptime_s"] >= 0 and r["snapshot_bytes"] >= 0, r
    assert r["lag"] is None or r["lag"] >= 0, r
PY
done
wait

say "the leader stopped: no replica's row shows it as a leader that answered"
pid=$(cat "$D/r$lead.pid")
kill -STOP "$pid"
# The others first, so that they are asked before they notice.
eps=()
for i in 0 1 2; do [[ $i -ne $lead ]] && eps+=("$(cut -d, -f$((i + 1)) "$D/endpoints")"); done
eps+=("$(cut -d, -f$((lead + 1)) "$D/endpoints")")
"$LOCKCTL" -e "$(IFS=,; echo "${eps[*]}")" status >"$T/st.out" 2>"$T/st.err" || true
kill -CONT "$pid"
cat "$T/st.out" "$T/st.err"
# Rows of replicas that answered: their LEADER is none, a replica that
# answered as leader, or marked N?.
answered_leaders=$(awk 'NR > 1 && $2 == "leader" {print $1}' "$T/st.out")
while read -r id role leader _; do
	[[ $role == down || $leader == none || $leader == *'?' ]] && continue
	grep -qx "$leader" <<<"$answered_leaders" ||
		fail "r$id names r$leader, which did not answer as leader, unmarked: $(cat "$T/st.out")"
done < <(tail -n +2 "$T/st.out")

say "after a leader dies, its followers count a new leader"
# The replica stopped above may still believe it leads for a moment after it
# resumed, beside the leader elected meanwhile: wait until exactly one says
# it leads and every replica knows a leader, and kill that one.
lead=-1
for _ in $(seq 100); do
	lead=-1 leaders=0 known=0
	for i in 0 1 2; do
		if [[ $(metric "${HTTP[$i]}" 'lockd_role{role="leader"}') == 1 ]]; then
			lead=$i
			leaders=$((leaders + 1))
		fi
		[[ $(metric "${HTTP[$i]}" lockd_has_leader) == 1 ]] && known=$((known + 1))
	done
	((leaders == 1 && known == 3)) && break
	lead=-1
	sleep 0.1
done
((lead >= 0)) || fail "no single leader that every replica knows"
before=()
for i in 0 1 2; do before[$i]=$(metric "${HTTP[$i]}" lockd_leader_changes_total) || true; done
kill -KILL "$(cat "$D/r$lead.pid")"
ok=0
for _ in $(seq 150); do
	ok=1
	for i in 0 1 2; do
		((i == lead)) && continue
		n=$(metric "${HTTP[$i]}" lockd_leader_changes_total) || true
		[[ -n $n && $n -gt ${before[$i]} && $(metric "${HTTP[$i]}" lockd_has_leader) == 1 ]] || ok=0
	done
	((ok)) && break
	sleep 0.1
done
((ok)) || fail "the survivors did not count a new leader"
dc stop "$D" >/dev/null
say "ok"
