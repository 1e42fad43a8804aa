#!/usr/bin/env bash
# Many sessions over few connections (issue 9): one RENEW request renews
# many sessions, each applied as its own command.
#  - bad input: more than 256 entries, or a request that has a session of
#    its own too, is refused with a sentence; an entry with session 0, or
#    a seq of 0 or with no room above it, gets its own refusal while the
#    others are renewed;
#  - a session's entry renews the leases it holds, and an unknown
#    session's renews none;
#  - lockbench holds 3,000 sessions over 2 connections on 4 threads, each
#    thread renewing its due sessions in one request: nothing lost, and
#    far fewer requests than renewals.
# $3 is tools/lockbench.
. "$(dirname "$0")/lib.sh"
BENCH=$(realpath "$3")

say "start 3 replicas"
start_all
lead=$(wait_leader)
say "leader is r$lead"

say "more than 256 sessions in one RENEW: refused"
line=$(probe "$CLIENTS" renew-many many:257) && fail "257: $line"
[[ $(kv "$line" status) == INVALID && $line == *"at most 256 sessions"* ]] ||
	fail "257: $line"

say "each entry is answered on its own"
tok=$(acquire_ok renew/a 701 1 10000)
[[ -n $tok ]] || fail "no token"
line=$(probe "$CLIENTS" renew-many 701:2:0,702:1:0,0:1:0,703:18446744073709551615:0,704:0:0) ||
	fail "renew-many: $line"
echo "$line"
[[ $(kv "$line" entries) == 5 ]] || fail "entries: $line"
[[ $(kv "$line" e0) == 701:OK:1 ]] || fail "the holder's entry: $line"
[[ $(kv "$line" e1) == 702:OK:0 ]] || fail "an unknown session's: $line"
[[ $(kv "$line" e2) == 0:E_SESSION:0 ]] || fail "session 0: $line"
[[ $(kv "$line" e3) == 703:E_SEQ:0 ]] || fail "seq 2^64-1: $line"
[[ $(kv "$line" e4) == 704:E_MALFORMED:0 ]] || fail "seq 0: $line"
line=$(probe "$CLIENTS" renew-many many:256) || fail "256: $line"
[[ $(kv "$line" entries) == 256 ]] || fail "256: $line"

say "3000 sessions over 2 connections, renewals batched"
"$BENCH" --endpoints "$CLIENTS" --mode renew -c 3000 -n 3000 \
	--connections 2 --threads 4 --batch-renewals --ttl-ms 3000 -d 8 \
	>"$T/bench.out" 2>&1 || fail "lockbench: $(tail -n 5 "$T/bench.out")"
json=$(tail -n 1 "$T/bench.out")
echo "$json" | cut -c1-400
python3 - "$json" <<'PY' || fail "lockbench: $json"
import json, sys
j = json.loads(sys.argv[1])
assert j["n"] == 3000 and j["lost"] == 0 and j["expired"] == 0, j
assert j["errors"] == 0 and j["batch_renewals"], j
# Each request carried many sessions' renewals.
assert j["lease_renewals_per_s"] > 10 * j["wire_requests_per_s"] > 0, j
PY
say "ok"
