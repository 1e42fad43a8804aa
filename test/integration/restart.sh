#!/usr/bin/env bash
# Every acknowledged grant survives the whole cell stopping: first a clean
# SIGTERM of all three, then SIGKILL of all three at once, in the middle of
# a stream of acquires (whatever was acknowledged before the kill must be
# there after).
. "$(dirname "$0")/lib.sh"

PROBE_SEQ=0
check_all() { # file of "name token" lines
	local name tok line
	while read -r name tok; do
		PROBE_SEQ=$((PROBE_SEQ + 1))
		line=$(probe "$CLIENTS" acquire "$name" 999 "$PROBE_SEQ" 60000) ||
			fail "$name: $line"
		[[ $(kv "$line" lease_status) == HELD ]] ||
			fail "$name lost (token $tok): $line"
		line=$(probe "$CLIENTS" get "$name" "$(position_of "$line")") ||
			fail "$name: $line"
		[[ $(kv "$line" token) == "$tok" ]] ||
			fail "$name had token $tok, now: $line"
	done <"$1"
}

say "start 3 replicas, grant 30 leases"
start_all
lead=$(wait_leader)
: >"$T/granted"
for k in $(seq 1 30); do
	echo "lease-$k $(acquire_ok "lease-$k" $((100 + k % 3)) "$k" 60000)" >>"$T/granted"
done
# r0 below must have learned the last grant before the cell stops (a
# replica alone knows only what it had learned).
line=$(probe "${CLIENT_URLS[$lead]}" status) || fail "status: $line"
wait_applied 0 "$(kv "$line" applied)"

say "SIGTERM all three"
stop_all TERM
[[ $STOP_RC -eq 0 ]] || fail "exit status $STOP_RC after SIGTERM"

say "one replica alone (no quorum, no leader) reads its grants from its disk"
start_replica 0
line=""
for _ in $(seq 50); do
	line=$(LOCKD_PROBE_TIMEOUT_MS=1000 probe "${CLIENT_URLS[0]}" status 2>/dev/null) && break
	sleep 0.1
done
[[ $(kv "$line" applied) -ge 30 && $(kv "$line" leases) -eq 30 ]] ||
	fail "r0 restored: $line"
tok=$(awk '$1 == "lease-7" {print $2}' "$T/granted")
line=$(probe "${CLIENT_URLS[0]}" get lease-7) || fail "get alone: $line"
[[ $(kv "$line" token) == "$tok" ]] || fail "lease-7 had token $tok, alone r0 says: $line"
start_replica 1
start_replica 2
wait_leader >/dev/null
check_all "$T/granted"

say "a stream of acquires, then SIGKILL all three at once"
(
	for k in $(seq 1 1000); do
		line=$("$PROBE" "$CLIENTS" acquire "stream-$k" 200 "$k" 60000 2>/dev/null) || break
		[[ $(kv "$line" lease_status) == GRANTED ]] &&
			echo "stream-$k $(kv "$line" token)" >>"$T/stream"
	done
) &
streamer=$!
sleep 1.5
stop_all KILL
wait "$streamer" 2>/dev/null || true
n=$(wc -l <"$T/stream")
[[ $n -gt 5 ]] || fail "only $n acquires acknowledged before the kill"
say "$n acquires were acknowledged before the kill"

start_all
wait_leader >/dev/null
check_all "$T/granted"
check_all "$T/stream"

say "new grants continue above every old token"
max=$(cut -d' ' -f2 "$T/granted" "$T/stream" | sort -n | tail -n 1)
tok=$(acquire_ok fresh 300 1 60000)
[[ $tok -gt $max ]] || fail "token $tok is not above $max"
stop_all TERM
[[ $STOP_RC -eq 0 ]] || fail "exit status $STOP_RC after SIGTERM"
say "ok"
