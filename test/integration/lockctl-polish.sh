#!/usr/bin/env bash
# lockctl polish (issue 12 item 5), against a real cell:
# - COMMAND --help, for every command: its own usage, exit 0, no cell asked;
# - --ttl over the cell's maximum: the cell's sentence, with the maximum;
# - ttl_ms_left in ls where the leader answered, `unknown` where a
#   follower did (a stale read);
# - elect --listen: the leader at the start, then one line per change (a
#   new leader, its proclaimed value, none), text and JSON, --count.
. "$(dirname "$0")/lib.sh"
LOCKCTL=$(realpath "$3")
lc() { "$LOCKCTL" -e "$CLIENTS" "$@"; }
# lockctl processes started in the background (the lockctl itself, not a
# shell around it, so that a signal reaches it): killed on a failure, so
# that lib.sh's cleanup does not wait for a listener forever.
BG=()
bg_lockctl() { # out err args...: starts lockctl in the background
	local out=$1 err=$2
	shift 2
	"$LOCKCTL" -e "$CLIENTS" "$@" >"$out" 2>"$err" &
	BG+=($!)
}
fail() {
	echo "FAIL: $*" >&2
	((${#BG[@]} == 0)) || kill -KILL "${BG[@]}" 2>/dev/null || true
	exit 1
}

say "COMMAND --help: its own usage, exit 0, without endpoints"
for cmd in status ls get acquire release proclaim revoke elect leader watch \
	check-token member; do
	out=$(env -u LOCKD_ENDPOINTS "$LOCKCTL" "$cmd" --help) ||
		fail "$cmd --help exited $?"
	head -n 1 <<<"$out" | grep "^usage: lockctl \[OPTIONS\] $cmd\b" >/dev/null ||
		fail "$cmd --help: $out"
	# Only its own entries: no other command's synopsis.
	[[ $(grep -c "lockctl \[OPTIONS\]" <<<"$out") -le 3 ]] || fail "$cmd --help: $out"
	grep -q "lockctl \[OPTIONS\] \(status\|acquire\)" <<<"$out" &&
		[[ $cmd != status && $cmd != acquire ]] && fail "$cmd --help shows others: $out"
	out=$(env -u LOCKD_ENDPOINTS "$LOCKCTL" "$cmd" -h) || fail "$cmd -h exited $?"
done
out=$("$LOCKCTL" elect --help)
grep -q -- "--listen" <<<"$out" || fail "elect --help: $out"
grep -q "lockctl \[OPTIONS\] elect GROUP --value V" <<<"$out" || fail "elect --help: $out"
out=$("$LOCKCTL" member --help)
[[ $(grep -c "lockctl \[OPTIONS\] member" <<<"$out") -eq 3 ]] || fail "member --help: $out"

start_all
lead=$(wait_leader)

say "acquire --ttl 10m: the cell's own sentence, with its maximum"
rc=0
lc acquire db/x --ttl 10m >"$T/out" 2>"$T/err" || rc=$?
[[ $rc -eq 2 ]] || fail "acquire --ttl 10m exited $rc: $(cat "$T/err")"
grep -q "60000 ms (this cell's --ttl-max-ms)" "$T/err" || fail "ttl: $(cat "$T/err")"
cat "$T/err"

say "ls: ttl_ms_left where the leader answered, unknown on a follower"
lc acquire db/y --ttl 30s >/dev/null || fail "acquire db/y"
out=$(lc ls db/)
left=$(kv "$out" ttl_ms_left)
[[ $left =~ ^[0-9]+$ && $left -gt 0 && $left -le 30000 ]] || fail "ls at the leader: $out"
echo "$out"
f=$(((lead + 1) % 3))
for _ in $(seq 30); do
	out=$("$LOCKCTL" -e "${CLIENT_URLS[$f]}" --consistency stale ls db/) && [[ -n $out ]] && break
	sleep 0.1
done
[[ $(kv "$out" ttl_ms_left) == unknown ]] || fail "stale ls on r$f: $out"
echo "$out"
"$LOCKCTL" -e "${CLIENT_URLS[$f]}" --consistency stale ls db/ -o json | grep '"ttl_ms_left":null' >/dev/null ||
	fail "stale ls json on r$f"

say "elect --listen: the leader, then each change"
# host-a is elected, host-c waits behind it; host-a resigns: host-c (one
# change); host-c resigns: none; host-b is elected, proclaims host-b2 (a
# second lockctl with its session), and resigns: none.
bg_lockctl "$T/listen.out" "$T/listen.err" elect grp --listen
lt=$!
bg_lockctl "$T/listen.json" "$T/listen.jerr" elect grp --listen -o json --count 6
lj=$!
sleep 0.5 # both have read the (free) group
wait_line() { # file pattern: waits up to 10 s for a line matching it
	for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	fail "no '$2' in $1: $(cat "$1")"
}
bg_lockctl "$T/a.out" "$T/a.err" elect grp --value host-a
a=$!
wait_line "$T/listen.out" "value=host-a"
bg_lockctl "$T/c.out" "$T/c.err" elect grp --value host-c
c=$!
sleep 0.3 # host-c queues behind host-a
kill -TERM "$a"
wait "$a" || fail "elect host-a exited $?: $(cat "$T/a.out" "$T/a.err")"
wait_line "$T/listen.out" "value=host-c"
wait_line "$T/c.out" "^elected"
kill -TERM "$c"
wait "$c" || fail "elect host-c exited $?: $(cat "$T/c.out" "$T/c.err")"
wait_line "$T/listen.out" "elected=0"
bg_lockctl "$T/b.out" "$T/b.err" elect grp --value host-b --ttl 1s
b=$!
wait_line "$T/b.out" "^elected"
line=$(grep '^elected' "$T/b.out")
lc proclaim grp --value host-b2 --token "$(kv "$line" token)" --session "$(kv "$line" session)" >/dev/null ||
	fail "proclaim"
wait_line "$T/listen.out" "value=host-b2"
# The proclaim's lockctl numbered its command from the wall clock, above
# host-b's own: host-b's renewals (a 1 s TTL) and its release must still
# get through (they did not: liblockclient now numbers on from the wall
# clock when superseded).
sleep 2
kill -0 "$b" || fail "host-b lost its lease after the proclaim: $(cat "$T/b.err")"
[[ $(lc leader grp) == value=host-b2* ]] || fail "leader after the proclaim: $(lc leader grp)"
kill -TERM "$b"
wait "$b" || fail "elect host-b exited $?: $(cat "$T/b.out" "$T/b.err")"
for _ in $(seq 30); do [[ $(grep -c elected=0 "$T/listen.out") -eq 2 ]] && break; sleep 0.1; done
[[ $(grep -c elected=0 "$T/listen.out") -eq 2 ]] ||
	fail "host-b's resign after the proclaim was not seen at once: $(cat "$T/listen.out")"
kill -INT "$lt"
wait "$lt" || fail "elect --listen exited $?: $(cat "$T/listen.err")"
cat "$T/listen.out"
# One line per change, in ledger order.
python3 - "$T/listen.out" <<'PY' || fail "listen lines: $(cat "$T/listen.out")"
import sys
lines = [dict(kv.split("=", 1) for kv in l.split()) for l in open(sys.argv[1])]
assert [l["value"] for l in lines] == ["host-a", "host-c", "", "host-b", "host-b2", ""], lines
assert [l["elected"] for l in lines] == ["1", "1", "0", "1", "1", "0"], lines
assert lines[3]["token"] == lines[4]["token"] != lines[1]["token"] != lines[0]["token"], lines
pos = [int(l["position"]) for l in lines]
assert pos == sorted(pos) and len(set(pos)) == 6, lines
PY
# --count 6: the JSON listener stopped by itself after the six lines.
if ! timeout 5 tail --pid "$lj" -f /dev/null; then
	fail "elect --listen --count 6 still running: $(cat "$T/listen.json")"
fi
wait "$lj" || fail "elect --listen -o json exited $?: $(cat "$T/listen.jerr")"
cat "$T/listen.json"
python3 - "$T/listen.json" <<'PY' || fail "listen json: $(cat "$T/listen.json")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [l["value"] for l in lines] == ["host-a", "host-c", None, "host-b", "host-b2", None], lines
assert [l["elected"] for l in lines] == [True, True, False, True, True, False], lines
assert all(l["group"] == "grp" for l in lines), lines
assert len({",".join(l.keys()) for l in lines}) == 1, lines
PY

say "elect --listen with a leader: it prints the leader first"
bg_lockctl "$T/f.out" "$T/f.err" elect grp2 --value first
f=$!
wait_line "$T/f.out" "^elected"
bg_lockctl "$T/l2.out" "$T/l2.err" elect grp2 --listen --count 1
l2=$!
wait_line "$T/l2.out" "elected=1 value=first"
kill -TERM "$f"
wait "$f" || fail "elect first exited $?: $(cat "$T/f.err")"
if ! timeout 5 tail --pid "$l2" -f /dev/null; then
	fail "elect --listen --count 1 still running: $(cat "$T/l2.out")"
fi
wait "$l2" || fail "elect --listen exited $?: $(cat "$T/l2.err")"
[[ $(wc -l <"$T/l2.out") -eq 2 && $(sed -n 2p "$T/l2.out") == *elected=0* ]] ||
	fail "listen from a leader: $(cat "$T/l2.out")"

say "elect --listen: bad input"
rc=0
lc elect grp --listen --value v >/dev/null 2>"$T/err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "only watches GROUP" "$T/err" || fail "listen --value: rc=$rc $(cat "$T/err")"
rc=0
lc get grp --listen >/dev/null 2>"$T/err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "for elect" "$T/err" || fail "get --listen: rc=$rc $(cat "$T/err")"
say "ok"
