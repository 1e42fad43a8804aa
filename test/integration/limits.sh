#!/usr/bin/env bash
# Issue 14, what one ordinary client could do, on a real cell:
#  - 1,000 pipelined acquires waiting an hour on one connection, which then
#    closes: their waits end with it (in the ledger too), so everyone else's
#    waiting acquires and watches are not told BUSY, and the name does not
#    pass to a client that is gone;
#  - a ttl_ms sent as a 64-bit varint is refused, not cut to 32 bits;
#  - a seq with no room above it is refused, and the session still works;
#  - a table full of sessions refuses the next one with a sentence, and
#    every replica still snapshots it and restarts with it.
. "$(dirname "$0")/lib.sh"

say "start 3 replicas (a snapshot every 64 slots)"
for i in 0 1 2; do start_replica "$i" --snapshot-every 64; done
lead=$(wait_leader)
say "leader is r$lead"

say "1000 waiting acquires from a connection that then closes"
tok=$(acquire_ok busy 501 1 30000)
line=$(probe "${CLIENT_URLS[$lead]}" abandon 1000 busy) || fail "abandon: $line"
echo "$line"
[[ $(kv "$line" sent) == 1000 ]] || fail "abandon: $line"
[[ $(kv "$line" extra_acquire) == TIMEOUT ]] ||
	fail "another client's waiting acquire: $line"
[[ $(kv "$line" extra_watch) =~ ^(TIMEOUT|OK)$ ]] ||
	fail "another client's watch: $line"
grep -q 'event=clients_gone' "$T/r$lead.log" || fail "no clients_gone line"
# The gone waits are cancelled in the ledger, not left for their hour.
waiters=
for _ in $(seq 50); do
	line=$(probe "${CLIENT_URLS[$lead]}" get busy) || fail "get: $line"
	waiters=$(kv "$line" waiters)
	[[ $waiters == 0 ]] && break
	sleep 0.1
done
[[ $waiters == 0 ]] || fail "gone clients still wait: $line"
line=$(probe "$CLIENTS" release busy 501 2 "$tok") || fail "release: $line"
line=$(probe "${CLIENT_URLS[$lead]}" get busy) || fail "get: $line"
[[ $(kv "$line" found) == 0 ]] || fail "the name went to a gone client: $line"

say "a ttl_ms over 32 bits is refused, not truncated"
line=$(probe "$CLIENTS" overlong long 601 1) && fail "overlong: $line"
[[ $(kv "$line" status) == INVALID && $line == *"ttl_ms does not fit in 32 bits"* ]] ||
	fail "overlong: $line"
line=$(probe "$CLIENTS" get long) || fail "get: $line"
[[ $(kv "$line" found) == 0 ]] || fail "granted anyway: $line"

say "a seq with no room above it is refused; the session still works"
line=$(probe "$CLIENTS" renew 602 18446744073709551615) && fail "renew: $line"
[[ $(kv "$line" status) == INVALID && $(kv "$line" lease_status) == E_SEQ ]] ||
	fail "renew seq 2^64-1: $line"
line=$(probe "$CLIENTS" acquire seqs 602 1 5000) || fail "$line"
[[ $(kv "$line" lease_status) == GRANTED ]] || fail "after the refusal: $line"

say "a write skipped behind a later seq of its session is not answered OK"
line=$(probe "$CLIENTS" acquire seqs2 602 5 5000) || fail "$line"
[[ $(kv "$line" lease_status) == GRANTED ]] || fail "$line"
line=$(probe "$CLIENTS" acquire seqs3 602 4 5000) || fail "$line"
[[ $(kv "$line" lease_status) == SUPERSEDED ]] || fail "a stale seq: $line"
line=$(probe "$CLIENTS" get seqs3) || fail "get: $line"
[[ $(kv "$line" found) == 0 ]] || fail "a stale seq was applied: $line"

say "a table full of sessions refuses the next with a sentence"
line=$(probe "$CLIENTS" status) || fail "status: $line"
have=$(kv "$line" leases)
line=$(LOCKD_PROBE_TIMEOUT_MS=300000 probe "$CLIENTS" sessions full 131200) ||
	fail "sessions: $line"
echo "$line"
# the sessions above already hold or wait: 131,072 in all
[[ $(kv "$line" table_full) -ge 100 && $(kv "$line" other) == 0 ]] ||
	fail "sessions: $line"
[[ $line == *"the cell's lease table is full"* ]] || fail "sessions: $line"
for i in 0 1 2; do alive "$i" || fail "r$i died with a full table"; done
line=$(probe "${CLIENT_URLS[$lead]}" status) || fail "status: $line"
full=$(kv "$line" leases)
(( full > have )) || fail "status: $line"
say "a replica restarts from its snapshot of the full table"
other=$(((lead + 1) % 3))
stop_replica "$other" KILL
start_replica "$other" --snapshot-every 64
for _ in $(seq 100); do
	line=$(probe "${CLIENT_URLS[$other]}" status) && [[ $(kv "$line" leases) == "$full" ]] && break
	sleep 0.1
done
[[ $(kv "$line" leases) == "$full" ]] || fail "r$other after restart: $line"

say "ok"
