#!/usr/bin/env bash
# lockctl end to end against a real cell: status, ls, get (-o json), acquire
# with and without a command, release, revoke, elect + leader with two
# instances, watch --count, check-token, and bad input (exit 2, a sentence).
. "$(dirname "$0")/lib.sh"
LOCKCTL=$(realpath "$3")
# Short leases so expiry-based steps stay quick.
EXTRA=(--grace-ms 500)

lc() { "$LOCKCTL" -e "$CLIENTS" "$@"; }
expect_rc() { # rc cmd...: runs cmd, asserts its exit status
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[[ $rc -eq $want ]] || fail "$* exited $rc, want $want: $(cat "$T/out" "$T/err")"
}

# Reads may come from a follower a little behind another process's write:
# retry for up to 3 s.
# (expect_rc calls fail, which exits: run the tries in a subshell.)
try_rc() { ( set +e; expect_rc "$@" ) >/dev/null 2>&1; }
eventually_rc() { # rc cmd...
	local i
	for i in $(seq 30); do
		try_rc "$@" && { expect_rc "$@"; return 0; }
		sleep 0.1
	done
	expect_rc "$@"
}

say "start 3 replicas"
start_all
wait_leader >/dev/null

say "status"
expect_rc 0 lc status
[[ $(grep -c leader "$T/out") -ge 1 && $(wc -l <"$T/out") -eq 4 ]] ||
	fail "status: $(cat "$T/out")"
expect_rc 0 lc status -o json
grep -q '"role":"leader"' "$T/out" || fail "status json: $(cat "$T/out")"

say "acquire without CMD prints session and token; release needs both"
expect_rc 0 lc acquire app/one --ttl 30s --value hello
line=$(cat "$T/out")
sess=$(kv "$line" session) # S:K, the session and its key
sid=${sess%%:*}            # what GET shows as the holder
tok=$(kv "$line" token)
[[ -n $sess && -n $tok ]] || fail "acquire: $line"
expect_rc 1 lc acquire app/one --wait 0s
grep -q "held by session $sid" "$T/err" || fail "held: $(cat "$T/err")"

say "get, get -o json, ls"
expect_rc 0 lc get app/one
[[ $(kv "$(cat "$T/out")" holder) == "$sid" && $(kv "$(cat "$T/out")" value) == hello ]] ||
	fail "get: $(cat "$T/out")"
expect_rc 0 lc -o json get app/one
j=$(cat "$T/out")
[[ $(wc -l <<<"$j") -eq 1 && $j == \{*\} && $j == *"\"name\":\"app/one\""* &&
	$j == *"\"holder\":\"$sid\""* && $j == *"\"token\":\"$tok\""* &&
	$j == *'"value":"hello"'* && $j == *'"ttl_ms_left":'* && $j == *'"waiters":0'* ]] ||
	fail "get json: $j"
expect_rc 3 lc get nothing/here -o json
[[ $(cat "$T/out") == *'"holder":null'* ]] || fail "free json: $(cat "$T/out")"
expect_rc 0 lc ls app/
[[ $(wc -l <"$T/out") -eq 1 ]] || fail "ls: $(cat "$T/out")"
expect_rc 0 lc ls -o json
grep -q '"name":"app/one"' "$T/out" || fail "ls json: $(cat "$T/out")"

expect_rc 0 lc --consistency read-your-writes get app/one
expect_rc 0 lc --consistency stale get app/one -o json
[[ $(cat "$T/out") == *"\"token\":\"$tok\","* ]] || fail "stale get: $(cat "$T/out")"

say "check-token current and stale"
expect_rc 0 lc check-token app/one "$tok"
expect_rc 1 lc check-token app/one $((tok + 1000))

say "release with the wrong session or key fails, with the right one works"
[[ $sess == *:* ]] || fail "acquire printed no session key: $sess"
expect_rc 1 lc release app/one --token "$tok" --session $((${sess%%:*} ^ 1)):${sess#*:}
# The id GET shows is not enough: without the key, or with another, the
# cell says the session is another client's.
expect_rc 1 lc release app/one --token "$tok" --session "${sess%%:*}"
grep -q "belongs to another client" "$T/err" || fail "no owner sentence: $(cat "$T/err")"
expect_rc 1 lc release app/one --token "$tok" --session "${sess%%:*}:12345"
expect_rc 0 lc get app/one
expect_rc 0 lc release app/one --token "$tok" --session "$sess"
eventually_rc 3 lc get app/one
eventually_rc 1 lc check-token app/one "$tok"

say "acquire with CMD holds while CMD runs; exits with its status"
"$LOCKCTL" -e "$CLIENTS" acquire app/job --ttl 1s -- \
	bash -c 'echo "$LOCKCTL_TOKEN" >"$0/job.tok"; sleep 2.5; exit 7' "$T" \
	>"$T/job.out" 2>"$T/job.err" &
job=$!
for _ in $(seq 50); do [[ -s $T/job.tok ]] && break; sleep 0.1; done
[[ -s $T/job.tok ]] || fail "CMD did not start: $(cat "$T/job.err")"
sleep 1.5 # past the 1 s TTL: renewals keep it
expect_rc 1 lc acquire app/job --wait 0s
expect_rc 0 lc check-token app/job "$(cat "$T/job.tok")"
rc=0
wait "$job" || rc=$?
[[ $rc -eq 7 ]] || fail "acquire CMD exited $rc: $(cat "$T/job.err")"
eventually_rc 3 lc get app/job

say "revoke: the CMD's lease is lost, CMD is stopped, exit 5"
"$LOCKCTL" -e "$CLIENTS" acquire app/rev --ttl 1s --kill-after 1s -- sleep 30 \
	>"$T/rev.out" 2>"$T/rev.err" &
rev=$!
for _ in $(seq 50); do lc get app/rev >/dev/null 2>&1 && break; sleep 0.1; done
expect_rc 0 lc revoke app/rev --reason "integration test"
# Until it expires, get shows the revoke and its reason (one word in text).
expect_rc 0 lc get app/rev
[[ $(kv "$(cat "$T/out")" revoke_reason) == 'integration\x20test' ]] ||
	fail "get after revoke: $(cat "$T/out")"
expect_rc 0 lc get app/rev -o json
[[ $(cat "$T/out") == *'"revoked":true,"revoke_reason":"integration test"'* ]] ||
	fail "get -o json after revoke: $(cat "$T/out")"
rc=0
wait "$rev" || rc=$?
[[ $rc -eq 5 ]] || fail "revoked holder exited $rc: $(cat "$T/rev.err")"
grep -q "lost the lease" "$T/rev.err" || fail "no lost message: $(cat "$T/rev.err")"
expect_rc 3 lc revoke nothing/here --reason x

# watch_started FILE: waits (up to 5 s) for a watch's first line, its
# starting state, so that the changes made next come after it.
watch_started() {
	for _ in $(seq 50); do [[ -s $1 ]] && return 0; sleep 0.1; done
	fail "watch printed no starting state: $(cat "$1")"
}
# watch_done PID FILE: the watch must exit 0 within 5 s (else it is killed).
watch_done() {
	if ! timeout 5 tail --pid "$1" -f /dev/null; then
		kill "$1" 2>/dev/null
		fail "watch still running after 5 s: $(cat "$2")"
	fi
	wait "$1" || fail "watch exited $?: $(cat "$2")"
}

say "watch --count"
"$LOCKCTL" -e "$CLIENTS" watch app/w --count 2 >"$T/watch.out" 2>"$T/watch.err" &
w=$!
watch_started "$T/watch.out"
expect_rc 0 lc acquire app/w --ttl 30s
s2=$(kv "$(cat "$T/out")" session)
t2=$(kv "$(cat "$T/out")" token)
sleep 0.4
expect_rc 0 lc release app/w --token "$t2" --session "$s2"
watch_done "$w" "$T/watch.out"
[[ $(wc -l <"$T/watch.out") -eq 3 ]] || fail "watch: $(cat "$T/watch.out")"

say "watch sees every change in order, even ones closer than a poll"
"$LOCKCTL" -e "$CLIENTS" watch app/q --count 4 -o json >"$T/wq.out" 2>"$T/wq.err" &
w=$!
watch_started "$T/wq.out"
toks=()
for _ in 1 2; do
	expect_rc 0 lc acquire app/q --ttl 30s
	s=$(kv "$(cat "$T/out")" session)
	toks+=("$(kv "$(cat "$T/out")" token)")
	expect_rc 0 lc release app/q --token "${toks[-1]}" --session "$s"
done
watch_done "$w" "$T/wq.out"
mapfile -t wl <"$T/wq.out"
[[ ${#wl[@]} -eq 5 ]] || fail "watch app/q printed ${#wl[@]} lines: $(cat "$T/wq.out")"
[[ ${wl[0]} == *'"holder":null'* && ${wl[2]} == *'"holder":null'* &&
	${wl[4]} == *'"holder":null'* ]] || fail "watch app/q frees: $(cat "$T/wq.out")"
[[ ${wl[1]} == *"\"token\":\"${toks[0]}\","* && ${wl[3]} == *"\"token\":\"${toks[1]}\","* ]] ||
	fail "watch app/q tokens ${toks[*]}: $(cat "$T/wq.out")"

say "watch --prefix: every change of every name under it, in order"
expect_rc 0 lc acquire px/a --ttl 30s
sa=$(kv "$(cat "$T/out")" session)
ta=$(kv "$(cat "$T/out")" token)
"$LOCKCTL" -e "$CLIENTS" watch --prefix px/ --count 3 >"$T/wp.out" 2>"$T/wp.err" &
w=$!
watch_started "$T/wp.out"
expect_rc 0 lc acquire px/b --ttl 30s
expect_rc 0 lc acquire elsewhere/c --ttl 30s
expect_rc 0 lc release px/a --token "$ta" --session "$sa"
expect_rc 0 lc acquire px/c --ttl 30s
watch_done "$w" "$T/wp.out"
mapfile -t pl <"$T/wp.out"
[[ ${#pl[@]} -eq 4 && ${pl[0]} == *"event=start"*"name=px/a held=1"* &&
	${pl[1]} == *"event=held"*"name=px/b held=1"* &&
	${pl[2]} == *"event=free"*"name=px/a held=0"* &&
	${pl[3]} == *"event=held"*"name=px/c held=1"* ]] ||
	fail "watch --prefix px/: $(cat "$T/wp.out")"
p1=$(sed -n 2p "$T/wp.out" | sed 's/^position=\([0-9]*\).*/\1/')
p3=$(sed -n 4p "$T/wp.out" | sed 's/^position=\([0-9]*\).*/\1/')
(( p1 < p3 )) || fail "watch --prefix positions: $(cat "$T/wp.out")"
expect_rc 2 lc watch px/a --prefix px/
expect_rc 2 lc watch

say "ls pages: 1,200 leases (two pages) come back whole, in order"
line=$("$PROBE" "$CLIENTS" fill big 1200) || fail "fill: $line"
# lockctl is a new client: it has seen none of the probe's positions, so a
# follower a decree behind may answer first. Ask until all are applied.
for _ in $(seq 30); do
	lc ls big- >"$T/ls.out" 2>"$T/ls.err" || fail "ls big-: $(cat "$T/ls.err")"
	[[ $(wc -l <"$T/ls.out") -ge 1200 ]] && break
	sleep 0.1
done
[[ $(wc -l <"$T/ls.out") -eq 1200 ]] ||
	fail "ls big- printed $(wc -l <"$T/ls.out") lines"
[[ $(kv "$(head -n 1 "$T/ls.out")" name) == big-00000 &&
	$(kv "$(tail -n 1 "$T/ls.out")" name) == big-01199 ]] ||
	fail "ls big- order: $(head -n 1 "$T/ls.out") ... $(tail -n 1 "$T/ls.out")"
sort -c "$T/ls.out" || fail "ls big- is not in name order"

say "elect + leader: two instances; the second takes over after the first"
expect_rc 3 lc leader grp
"$LOCKCTL" -e "$CLIENTS" elect grp --value one --ttl 2s -- sleep 2 \
	>"$T/e1.out" 2>"$T/e1.err" &
e1=$!
for _ in $(seq 50); do grep -q elected "$T/e1.out" && break; sleep 0.1; done
grep -q elected "$T/e1.out" || fail "first not elected: $(cat "$T/e1.err")"
"$LOCKCTL" -e "$CLIENTS" elect grp --value two --ttl 2s -- sleep 1 \
	>"$T/e2.out" 2>"$T/e2.err" &
e2=$!
sleep 0.5
expect_rc 0 lc leader grp
[[ $(kv "$(cat "$T/out")" value) == one ]] || fail "leader: $(cat "$T/out")"
grep -q elected "$T/e2.out" && fail "two leaders"
wait "$e1" || fail "first elect exited $?: $(cat "$T/e1.err")"
for _ in $(seq 30); do grep -q elected "$T/e2.out" && break; sleep 0.1; done
grep -q elected "$T/e2.out" || fail "second not elected: $(cat "$T/e2.err")"
eventually_rc 0 lc leader grp -o json
[[ $(cat "$T/out") == *'"value":"two"'* ]] || fail "leader json: $(cat "$T/out")"
wait "$e2" || fail "second elect: $(cat "$T/e2.err")"

say "proclaim: the elected leader's new value, same token, watchers see it"
"$LOCKCTL" -e "$CLIENTS" elect pgrp --value first --ttl 30s -- sleep 30 \
	>"$T/pe.out" 2>"$T/pe.err" &
pe=$!
for _ in $(seq 50); do grep -q elected "$T/pe.out" && break; sleep 0.1; done
grep -q elected "$T/pe.out" || fail "not elected: $(cat "$T/pe.err")"
ptok=$(kv "$(head -1 "$T/pe.out")" token)
pses=$(kv "$(head -1 "$T/pe.out")" session)
[[ $pses == *:* ]] || fail "elect printed no session key: $(cat "$T/pe.out")"
"$LOCKCTL" -e "$CLIENTS" watch pgrp --count 1 >"$T/pw.out" 2>"$T/pw.err" &
w=$!
watch_started "$T/pw.out"
expect_rc 0 lc proclaim pgrp --value second --token "$ptok" --session "$pses"
watch_done "$w" "$T/pw.out"
[[ $(sed -n 2p "$T/pw.out") == *"event=value"*"token=$ptok "*"value=second"* ]] ||
	fail "watch after proclaim: $(cat "$T/pw.out")"
expect_rc 0 lc leader pgrp
[[ $(kv "$(cat "$T/out")" value) == second && $(kv "$(cat "$T/out")" token) == "$ptok" ]] ||
	fail "leader after proclaim: $(cat "$T/out")"
expect_rc 1 lc proclaim pgrp --value third --token "$ptok" --session 1:2
grep -q "not the current holder" "$T/err" || fail "proclaim by another: $(cat "$T/err")"
expect_rc 2 lc proclaim pgrp --value third
kill "$pe"; wait "$pe" 2>/dev/null || true

say "bad input: exit 2 with a sentence"
expect_rc 2 lc frobnicate
grep -q "unknown command 'frobnicate'" "$T/err" || fail "$(cat "$T/err")"
expect_rc 2 lc acquire x --ttl 5parsecs
grep -q "not a duration" "$T/err" || fail "$(cat "$T/err")"
expect_rc 2 lc get 'bad name'
grep -q "not a lease name" "$T/err" || fail "$(cat "$T/err")"
expect_rc 2 lc --consistency sometimes get x
grep -q "read-your-writes or stale" "$T/err" || fail "$(cat "$T/err")"
rc=0
env -u LOCKD_ENDPOINTS "$LOCKCTL" get x >"$T/out" 2>"$T/err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "no endpoints" "$T/err" || fail "no endpoints: rc=$rc $(cat "$T/err")"
expect_rc 0 "$LOCKCTL" --help
expect_rc 0 "$LOCKCTL" acquire --help
grep -q -- "--ttl" "$T/out" || fail "acquire --help: $(cat "$T/out")"

# jget FILE KEY: a key of the one JSON object in FILE, as python's json
# reads it (a 64-bit number would come back rounded by most JSON tools:
# lockctl prints ids and tokens as strings).
jget() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print("null" if v is None else v)' "$1" "$2"; }
jkeys() { python3 -c 'import json,sys; print(",".join(json.loads(sys.argv[1]).keys()))' "$1"; }

say "issue 16: the cell's sentence reaches the user, with its limit"
expect_rc 2 lc acquire x/ttl --ttl 2m
grep -q "60000 ms" "$T/err" || fail "no limit in: $(cat "$T/err")"
grep -q "()" "$T/err" && fail "empty parentheses: $(cat "$T/err")"

say "issue 16: durations, --name=value, bare HOST:PORT, --version"
expect_rc 0 lc acquire x/dur --ttl=1.5s --wait=1m30s
[[ $(kv "$(cat "$T/out")" token) =~ ^[0-9]+$ ]] || fail "acquire --ttl=1.5s: $(cat "$T/out")"
expect_rc 0 lc get x/dur -o json
[[ $(jget "$T/out" ttl_ms) == 1500 ]] || fail "ttl 1.5s: $(cat "$T/out")"
expect_rc 2 lc acquire x/dur --ttl=1m30
grep -q "not a duration" "$T/err" || fail "1m30: $(cat "$T/err")"
expect_rc 0 "$LOCKCTL" -e "${CLIENT_URLS[0]#tcp://},${CLIENT_URLS[1]#tcp://}" --output=json get x/dur
[[ $(jget "$T/out" held) == True ]] || fail "HOST:PORT endpoints: $(cat "$T/out")"
expect_rc 0 "$LOCKCTL" --version
[[ $(cat "$T/out") == "lockctl "[0-9]* ]] || fail "lockctl --version: $(cat "$T/out")"
expect_rc 0 "$LOCKD" --version
[[ $(cat "$T/out") == "lockd "[0-9]* ]] || fail "lockd --version: $(cat "$T/out")"

say "issue 16: 64-bit ids and tokens are JSON strings, and go back in as they came"
expect_rc 0 lc -o json acquire x/ids --ttl 30s
cp "$T/out" "$T/ids.json"
grep -q '"session":"[0-9]*"' "$T/ids.json" && grep -q '"token":"[0-9]*"' "$T/ids.json" ||
	fail "ids as strings: $(cat "$T/ids.json")"
# The raw JSON string (quotes and all) is accepted, as is the bare value.
expect_rc 0 lc check-token x/ids "\"$(jget "$T/ids.json" token)\""
expect_rc 0 lc release x/ids --token "$(jget "$T/ids.json" token)" \
	--session "$(jget "$T/ids.json" credential)"

say "issue 16: one JSON shape per object; values that are not UTF-8 round-trip"
expect_rc 3 lc get x/free -o json
free_keys=$(jkeys "$(cat "$T/out")")
[[ $(jget "$T/out" held) == False ]] || fail "free get: $(cat "$T/out")"
expect_rc 0 lc acquire x/bytes --ttl 30s --value $'\xff\xfeA'
expect_rc 0 lc get x/bytes -o json
[[ $(jkeys "$(cat "$T/out")") == "$free_keys" ]] ||
	fail "held and free get differ: $free_keys vs $(cat "$T/out")"
[[ $(jget "$T/out" value) == null ]] || fail "not UTF-8 but a value: $(cat "$T/out")"
[[ $(jget "$T/out" value_base64 | base64 -d | od -An -tx1 | tr -d ' ') == fffe41 ]] ||
	fail "value_base64: $(cat "$T/out")"
expect_rc 0 lc acquire x/utf --ttl 30s --value 'héllo'
expect_rc 0 lc get x/utf -o json
[[ $(jget "$T/out" value) == 'héllo' ]] || fail "UTF-8 value: $(cat "$T/out")"
expect_rc 3 lc leader x/none -o json
[[ $(jget "$T/out" elected) == False && $(jget "$T/out" group) == x/none ]] ||
	fail "leader of nothing, json: $(cat "$T/out")"
lead_keys=$(jkeys "$(cat "$T/out")")
expect_rc 0 lc leader x/utf -o json
[[ $(jkeys "$(cat "$T/out")") == "$lead_keys" ]] || fail "leader shapes: $(cat "$T/out")"
# ls and watch: the same keys as get (ttl_ms_left: the leader answered a
# linearizable listing, so it knows it; issue 12).
expect_rc 0 lc ls x/utf -o json
python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); assert len(l)==1 and ",".join(l[0].keys())==sys.argv[2] and l[0]["ttl_ms_left"] > 0, l' \
	"$T/out" "$free_keys" || fail "ls json: $(cat "$T/out")"
expect_rc 0 lc ls x/utf
grep -q unknown "$T/out" && fail "ls prints unknown: $(cat "$T/out")"
"$LOCKCTL" -e "$CLIENTS" watch x/w16 --count 2 -o json >"$T/w16.out" 2>"$T/w16.err" &
w=$!
watch_started "$T/w16.out"
expect_rc 0 lc acquire x/w16 --ttl 30s
s=$(kv "$(cat "$T/out")" session)
t16=$(kv "$(cat "$T/out")" token)
expect_rc 0 lc release x/w16 --token "$t16" --session "$s"
watch_done "$w" "$T/w16.out"
python3 - "$T/w16.out" <<'PY' || fail "watch lines: $(cat "$T/w16.out")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [l["event"] for l in lines] == ["start", "held", "free"], lines
assert len({",".join(l.keys()) for l in lines}) == 1, lines
assert lines[1]["position"] < lines[2]["position"], lines
PY
# --from the position before the grant replays the same two changes.
from=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["position"])' "$T/w16.out")
expect_rc 0 timeout 10 "$LOCKCTL" -e "$CLIENTS" watch x/w16 --from "$from" --count 2
[[ $(grep -c 'event=held' "$T/out") -eq 1 && $(grep -c 'event=free' "$T/out") -eq 1 ]] ||
	fail "watch --from: $(cat "$T/out")"
expect_rc 2 lc watch x/ --prefix x/
grep -q "not both" "$T/err" || fail "watch NAME --prefix: $(cat "$T/err")"

say "two replicas stopped: reads are linearizable unless asked otherwise"
# Keep a follower: it answers (not the leader, or no leader known), and
# lockctl says so rather than "no replica answered" (issue 16).
lead=$(wait_leader)
keep=$(((lead + 1) % 3))
others=()
for i in 0 1 2; do [[ $i -eq $keep ]] || others+=("$(cat "$T/r$i.pid")"); done
kill -STOP "${others[@]}"
expect_rc 4 "$LOCKCTL" -e "${CLIENT_URLS[$keep]}" get app/one
grep -q "none knew a leader" "$T/err" || fail "no leader: $(cat "$T/err")"
grep -q "no replica answered" "$T/err" && fail "r$keep answered: $(cat "$T/err")"
# A stale read is answered by it alone (app/one is free by now: exit 3).
expect_rc 3 "$LOCKCTL" -e "${CLIENT_URLS[$keep]}" --consistency stale get app/one
kill -CONT "${others[@]}"

say "the cell down: exit 4"
stop_all KILL
expect_rc 4 lc get x
say "ok"
