#!/usr/bin/env bash
# A replica refuses what is not its own: a data directory of another replica
# id or another cell, flags that make an unsafe or impossible cell (exit 2
# with a sentence), a port already taken. And a cell configured entirely by
# --config files works.
. "$(dirname "$0")/lib.sh"

# expect_refusal code pattern args... : lockd exits with code, saying pattern
expect_refusal() {
	local want=$1 pattern=$2 rc=0
	shift 2
	"$LOCKD" "$@" >"$T/out" 2>&1 &
	local pid=$!
	local t
	for t in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null || true
		fail "lockd $* kept running; wanted exit $want"
	fi
	wait "$pid" || rc=$?
	[[ $rc -eq $want ]] || fail "lockd $*: exit $rc, wanted $want: $(cat "$T/out")"
	grep -q -- "$pattern" "$T/out" ||
		fail "lockd $*: no '$pattern' in: $(cat "$T/out")"
	echo "    refused ($rc): $(grep '^lockd:' "$T/out" | head -n 1)"
}

base=(--peers "$PEERS" --clients "$CLIENTS" --peer-key "$PEER_KEY")

say "make r0's data directory (cell 42), stop it"
start_replica 0 --cell-id 42
sleep 1
stop_replica 0 TERM
[[ $STOP_RC -eq 0 ]] || fail "exit $STOP_RC"

say "another replica id, another cell, another cell size on it"
expect_refusal 1 "replica" --id 1 "${base[@]}" --data "$T/r0" --cell-id 42
expect_refusal 1 "cell" --id 0 "${base[@]}" --data "$T/r0" --cell-id 43
expect_refusal 1 "replica" --id 0 --peers "${PEER_URLS[0]},${PEER_URLS[1]}" \
	--clients "${CLIENT_URLS[0]},${CLIENT_URLS[1]}" --data "$T/r0" \
	--peer-key "$PEER_KEY"
echo "not a store" >"$T/file"
mkdir -p "$T/junk" && echo x >"$T/junk/CURRENT"
expect_refusal 1 "" --id 0 "${base[@]}" --data "$T/junk"

say "bad flags: exit 2 with a sentence"
expect_refusal 2 "out of range" --id 3 "${base[@]}" --data "$T/x"
expect_refusal 2 "grace" --id 0 "${base[@]}" --data "$T/x" \
	--ttl-max-ms 600000 --grace-ms 10
expect_refusal 2 "required" --id 0 "${base[@]}"
expect_refusal 2 "unknown option" --id 0 "${base[@]}" --data "$T/x" --bogus 1
expect_refusal 2 "twice" --id 0 "${base[@]}" --data "$T/x" \
	--heartbeat-ms 200 --election-ms 300
expect_refusal 2 "URLs" --id 0 --peers "$PEERS" \
	--clients "${CLIENT_URLS[0]}" --data "$T/x"
expect_refusal 2 "whole number" --id 0 "${base[@]}" --data "$T/x" --tick-ms -5
printf 'id = 0\nbogus line\n' >"$T/bad.conf"
expect_refusal 2 "bad.conf:2" --config "$T/bad.conf"

say "plain peers without a cell key, or with a weak one: exit 2 with a sentence"
nokey=(--id 0 --peers "$PEERS" --clients "$CLIENTS" --data "$T/x")
expect_refusal 2 "peer-key" "${nokey[@]}"
head -c 16 /dev/urandom >"$T/short.key" && chmod 600 "$T/short.key"
expect_refusal 2 "32 to" "${nokey[@]}" --peer-key "$T/short.key"
head -c 32 /dev/urandom >"$T/open.key" && chmod 644 "$T/open.key"
expect_refusal 2 "chmod 600" "${nokey[@]}" --peer-key "$T/open.key"
expect_refusal 2 "cannot read" "${nokey[@]}" --peer-key "$T/missing.key"

say "a port already taken"
start_replica 1
sleep 0.5
expect_refusal 1 "in use" --id 1 "${base[@]}" --data "$T/r1b"
stop_replica 1 TERM

say "a cell configured by --config files"
rm -rf "$T"/r*
for i in 0 1 2; do
	cat >"$T/r$i.conf" <<CONF
# lockd replica $i
id = $i
peers = $PEERS
clients = $CLIENTS
data = $T/r$i
peer_key = $PEER_KEY
cell_id = 7
grace-ms = 1500
ttl-max-ms = 30000
heartbeat-ms = 40
election-ms = 250
tick-ms = 50
CONF
	"$LOCKD" --config "$T/r$i.conf" >>"$T/r$i.log" 2>&1 &
	echo $! >"$T/r$i.pid"
done
wait_leader >/dev/null
acquire_ok configured 1 1 30000 >/dev/null
line=$(probe "$CLIENTS" acquire too-long 1 2 31000) && fail "$line"
[[ $(kv "$line" lease_status) == E_TTL ]] || fail "ttl-max-ms from the file: $line"
stop_all TERM
[[ $STOP_RC -eq 0 ]] || fail "exit $STOP_RC"
say "ok"
