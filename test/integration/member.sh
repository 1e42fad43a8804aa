#!/usr/bin/env bash
# Membership by decree against real processes (README, Membership):
# 1. replica 3 starts with --join and `lockctl member add` waits until the
#    leader has promoted it to voter;
# 2. the leader (one of the first three) is removed: it hands over, stops
#    by itself with exit 0 and its `removed` line, and the three voters
#    left serve writes and reads; with another first replica killed, the
#    two alive are still a quorum;
# 3. the removed replica's data directory refuses to start again (exit 3,
#    the same line);
# 4. the cell grows to five (4 and 5 join) and shrinks back to three while
#    lockbench cycles leases on it: no errors;
# 5. a dead replica is replaced as README says: removed, then a new one
#    (id 6) added.
# Arguments: lockd, lockd-probe, lockctl, lockbench.
. "$(dirname "$0")/lib.sh"
LOCKCTL=$(realpath "$3")
LOCKBENCH=$(realpath "$4")
N=7 # lib.sh's cleanup kills r0..r6

mapfile -t MORE < <("$LOCKD" --free-ports 12)
[[ ${#MORE[@]} -eq 12 ]] || fail "no free ports"
# Ports for ids 3, 4, 5 that lib.sh's six do not already use.
NEW=()
for p in "${MORE[@]}"; do
	[[ " ${PORTS[*]} " == *" $p "* ]] || NEW+=("$p")
done
[[ ${#NEW[@]} -ge 8 ]] || fail "not enough distinct free ports"
for i in 3 4 5 6; do
	PEER_URLS[$i]="tcp://127.0.0.1:${NEW[$(((i - 3) * 2))]}"
	CLIENT_URLS[$i]="tcp://127.0.0.1:${NEW[$(((i - 3) * 2 + 1))]}"
done
ALL=$(IFS=,; echo "${CLIENT_URLS[*]}")

lc() { "$LOCKCTL" -e "$ALL" "$@"; }
BG=()
rc_is() { return "$1"; }
member_cleanup() {
	local rc=$? p
	for p in "${BG[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rc_is "$rc" || cleanup
	cleanup
}
trap member_cleanup EXIT

start_joiner() { # id [join URLs]: a replica that joins the running cell
	local i=$1
	"$LOCKD" --id "$i" --join "${2:-$CLIENTS}" --listen-peer "${PEER_URLS[$i]}" \
		--listen-client "${CLIENT_URLS[$i]}" --data "$T/r$i" \
		"${PEER_KEY_FLAGS[@]}" "${EXTRA[@]}" >>"$T/r$i.log" 2>&1 &
	echo $! >"$T/r$i.pid"
}

members_json() { lc member list -o json 2>"$T/err"; }

# The id the cell's member list marks as leader (retrying up to 10 s).
cell_leader() {
	local i out id
	for i in $(seq 50); do
		out=$(members_json) || true
		id=$(sed -n 's/.*"id":\([0-9]*\),[^}]*"leader":true.*/\1/p' <<<"$out")
		if [[ -n $id ]]; then
			echo "$id"
			return 0
		fi
		sleep 0.2
	done
	fail "no leader in the member list: $out $(cat "$T/err")"
}

add_member() { # id
	local i=$1
	lc member add --id "$i" --peer "${PEER_URLS[$i]}" \
		--client "${CLIENT_URLS[$i]}" --timeout 30s >"$T/out" 2>"$T/err" ||
		fail "member add $i: $(cat "$T/out" "$T/err")"
	grep -q "added $i: voting" "$T/out" || fail "member add $i: $(cat "$T/out")"
}

# Waits for replica id's process to end by itself; its status in STOP_RC.
wait_exit() { # id timeout_s
	local i=$1 deadline=$((SECONDS + $2)) pid
	pid=$(cat "$T/r$i.pid")
	while kill -0 "$pid" 2>/dev/null; do
		((SECONDS < deadline)) || fail "r$i still runs ${2}s after its removal"
		sleep 0.2
	done
	STOP_RC=0
	wait "$pid" 2>/dev/null || STOP_RC=$?
	rm -f "$T/r$i.pid"
}

write_ok() { # name: a lease is granted (and released), through the leader
	local out
	out=$(lc acquire "$1" --ttl 20s 2>&1) || fail "acquire $1: $out"
	local tok sess
	tok=$(sed -n 's/.*token=\([0-9]*\).*/\1/p' <<<"$out")
	sess=$(sed -n 's/.*session=\([0-9:]*\).*/\1/p' <<<"$out")
	[[ -n $tok && -n $sess ]] || fail "acquire $1: $out"
	lc release "$1" --token "$tok" --session "$sess" >/dev/null 2>&1 ||
		fail "release $1"
}

say "start 3 replicas"
start_all
wait_leader >/dev/null

say "member list: the three first replicas, all voting, with their URLs"
out=$(members_json) || fail "member list: $(cat "$T/err")"
for i in 0 1 2; do
	grep -q "{\"id\":$i,\"peer\":\"${PEER_URLS[$i]}\",\"client\":\"${CLIENT_URLS[$i]}\",\"voting\":true" <<<"$out" ||
		fail "member list lacks replica $i: $out"
done

say "bad input: exit 2 with a sentence, the cell untouched"
for bad in "member add --id 64 --peer tcp://a:1 --client tcp://a:2" \
	"member add --id 3" "member remove x" "member frob"; do
	rc=0
	# shellcheck disable=SC2086
	lc $bad >"$T/out" 2>&1 || rc=$?
	[[ $rc -eq 2 ]] || fail "lockctl $bad exited $rc: $(cat "$T/out")"
done
rc=0
lc member add --id 1 --peer tcp://127.0.0.1:1 --client tcp://127.0.0.1:2 \
	>"$T/out" 2>&1 || rc=$?
[[ $rc -eq 1 ]] && grep -q "already a member" "$T/out" ||
	fail "adding a member twice: exit $rc: $(cat "$T/out")"

say "--join refuses what cannot join"
expect_exit() { # code pattern args...: lockd exits with code, saying pattern
	local want=$1 pat=$2 rc=0
	shift 2
	timeout 20 "$LOCKD" "$@" >"$T/refused.log" 2>&1 || rc=$?
	[[ $rc -eq $want ]] && grep -q -- "$pat" "$T/refused.log" ||
		fail "lockd $* exited $rc, want $want and '$pat': $(tail -n 2 "$T/refused.log")"
}
expect_exit 2 "one or the other" --id 3 --join "$CLIENTS" --peers "$PEERS" \
	--clients "$CLIENTS" --data "$T/x" "${PEER_KEY_FLAGS[@]}"
expect_exit 2 "listen-peer" --id 3 --join "$CLIENTS" --data "$T/x" \
	"${PEER_KEY_FLAGS[@]}"
expect_exit 1 "already a member" --id 2 --join "$CLIENTS" \
	--listen-peer "${PEER_URLS[3]}" --listen-client "${CLIENT_URLS[3]}" \
	--data "$T/x" "${PEER_KEY_FLAGS[@]}"
rm -rf "$T/x"

say "replica 3 joins (--join): role joining until member add, which waits until it votes"
start_joiner 3
for k in $(seq 50); do
	out=$("$LOCKCTL" -e "${CLIENT_URLS[3]}" status -o json 2>/dev/null) || true
	grep -q '"role":"joining"' <<<"$out" && break
	sleep 0.2
done
grep -q '"role":"joining"' <<<"$out" || fail "r3 before member add: $out"
add_member 3
out=$(lc status -o json 2>/dev/null) || true
[[ $(grep -o '"voters":4' <<<"$out" | wc -l) -eq 4 ]] ||
	fail "status does not show four voters everywhere: $out"
write_ok j/after-add

# The leader goes, so that it must hand over (unless replica 3 won an
# election meanwhile: then replica 0 goes).
lead=$(cell_leader)
gone=$lead
[[ $gone -le 2 ]] || gone=0
say "remove replica $gone (the leader is r$lead)"
lc member remove "$gone" >"$T/out" 2>&1 ||
	fail "member remove $gone: $(cat "$T/out")"
wait_exit "$gone" 20
[[ $STOP_RC -eq 0 ]] || fail "removed r$gone exited $STOP_RC, want 0"
grep -q "removed id=$gone: this replica left the cell" "$T/r$gone.log" ||
	fail "r$gone did not log its removal"
out=$(members_json) || fail "member list: $(cat "$T/err")"
grep -q "\"id\":$gone," <<<"$out" && fail "replica $gone is still listed: $out"
grep -q "\"leader\":true" <<<"$out" || fail "no leader after the removal: $out"
write_ok j/after-remove
lc get j/after-remove >/dev/null 2>&1 && fail "a released lease is still held"

# Another of the first replicas dies: the two left of the three voters are
# a quorum.
kill_id=0
[[ $kill_id -ne $gone ]] || kill_id=1
say "kill -9 replica $kill_id: two of the three voters are a quorum"
stop_replica "$kill_id" KILL
write_ok j/two-of-three
lc get j/two-of-three >/dev/null 2>&1 && fail "a released lease is still held"
say "replica $kill_id comes back"
start_replica "$kill_id"

say "replica $gone's data directory refuses to start again"
rc=0
timeout 20 "$LOCKD" --id "$gone" --peers "$PEERS" --clients "$CLIENTS" \
	--data "$T/r$gone" "${PEER_KEY_FLAGS[@]}" >"$T/again.log" 2>&1 || rc=$?
[[ $rc -eq 3 ]] || fail "r$gone restarted: exit $rc: $(tail -n 3 "$T/again.log")"
grep -q "removed id=$gone: this replica left the cell" "$T/again.log" ||
	fail "r$gone's restart did not say why: $(tail -n 3 "$T/again.log")"
say "a joined replica restarts from its own directory, asking nobody"
stop_replica 3 TERM
[[ $STOP_RC -eq 0 ]] || fail "r3 exited $STOP_RC"
start_joiner 3 tcp://127.0.0.1:1
for k in $(seq 50); do
	out=$("$LOCKCTL" -e "${CLIENT_URLS[3]}" status -o json 2>/dev/null) || true
	grep -q '"role":"\(follower\|leader\)"' <<<"$out" && break
	sleep 0.2
done
grep -q '"role":"\(follower\|leader\)"' <<<"$out" || fail "r3 after its restart: $out"
grep -q "event=join " "$T/r3.log" && [[ $(grep -c "event=join " "$T/r3.log") -eq 1 ]] ||
	fail "r3 asked the cell again at its restart"
write_ok j/after-r3-restart

say "nor does --join take its id again"
expect_exit 3 "never used twice" --id "$gone" --join "$CLIENTS" \
	--listen-peer "${PEER_URLS[4]}" --listen-client "${CLIENT_URLS[4]}" \
	--data "$T/x" "${PEER_KEY_FLAGS[@]}"
rm -rf "$T/x"

say "3 -> 5 -> 3 under lockbench"
"$LOCKBENCH" --endpoints "$ALL" --mode cycle -c 2 -k 50 -d 20 --ttl-ms 5000 \
	--wait-ms 2000 >"$T/bench.out" 2>"$T/bench.err" &
BG+=($!)
bench=$!
sleep 1
start_joiner 4
add_member 4
start_joiner 5
add_member 5
out=$(members_json) || fail "member list: $(cat "$T/err")"
[[ $(grep -o '"voting":true' <<<"$out" | wc -l) -eq 5 ]] ||
	fail "not five voters: $out"
lc member remove 5 >"$T/out" 2>&1 || fail "member remove 5: $(cat "$T/out")"
wait_exit 5 20
lc member remove 4 >"$T/out" 2>&1 || fail "member remove 4: $(cat "$T/out")"
wait_exit 4 20
out=$(members_json) || fail "member list: $(cat "$T/err")"
[[ $(grep -o '"voting":true' <<<"$out" | wc -l) -eq 3 ]] ||
	fail "not three voters: $out"
rc=0
wait "$bench" || rc=$?
[[ $rc -eq 0 ]] || fail "lockbench exited $rc: $(cat "$T/bench.out" "$T/bench.err")"
grep -q '"errors":0' "$T/bench.out" || fail "lockbench: $(cat "$T/bench.out")"
write_ok j/end

say "replace a dead replica: kill -9 r3, remove it, add r6"
stop_replica 3 KILL
lc member remove 3 >"$T/out" 2>&1 || fail "member remove 3 (dead): $(cat "$T/out")"
start_joiner 6
add_member 6
out=$(members_json) || fail "member list: $(cat "$T/err")"
[[ $(grep -o '"voting":true' <<<"$out" | wc -l) -eq 3 ]] &&
	grep -q '"id":6,' <<<"$out" && ! grep -q '"id":3,' <<<"$out" ||
	fail "not the three voters with 6 for 3: $out"
write_ok j/replaced
say "ok"
