#!/usr/bin/env bash
# Garbage on every client and peer port changes nothing and crashes
# nothing: random bytes over raw TCP, SP handshakes with absurd lengths,
# oversized messages, and well-formed protobuf with nonsense fields
# (unknown ops, session 0, bad names, NULs in strings, peer messages from
# replicas that do not exist or addressed to another replica).
. "$(dirname "$0")/lib.sh"

say "start 3 replicas, grant one lease"
start_all
lead=$(wait_leader)
tok=$(acquire_ok keep 1 1 60000)
line=$(probe "${CLIENT_URLS[$lead]}" status) || fail "$line"
ballot=$(kv "$line" ballot)

raw_tcp() { # port bytes-file
	timeout 5 bash -c "cat '$2' >/dev/tcp/127.0.0.1/$1" 2>/dev/null || true
}

say "raw TCP garbage on all six ports"
head -c 300000 /dev/urandom >"$T/random.bin"
# SP handshakes (PUSH to a PULL, REQ to a REP) announcing a message of
# 2^63 bytes, then a few bytes of it.
printf '\x00SP\x00\x00\x50\x00\x00\x80\x00\x00\x00\x00\x00\x00\x00abc' >"$T/sp-push.bin"
printf '\x00SP\x00\x00\x30\x00\x00\x80\x00\x00\x00\x00\x00\x00\x00abc' >"$T/sp-req.bin"
# A right handshake and a message of 4 random bytes.
printf '\x00SP\x00\x00\x50\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\xde\xad\xbe\xef' >"$T/sp-small.bin"
for p in "${PORTS[@]}"; do
	raw_tcp "$p" "$T/random.bin"
	raw_tcp "$p" "$T/sp-push.bin"
	raw_tcp "$p" "$T/sp-req.bin"
	raw_tcp "$p" "$T/sp-small.bin"
done

say "malformed and nonsense client requests"
for i in 0 1 2; do
	line=$(probe "${CLIENT_URLS[$i]}" fuzz-client 150 $((i + 1))) || fail "r$i: $line"
	echo "r$i client: $line"
	[[ $(kv "$line" invalid) -gt 0 ]] || fail "no request was refused: $line"
done

say "malformed and nonsense peer messages"
for i in 0 1 2; do
	line=$(probe "${PEER_URLS[$i]}" fuzz-peer 200 $((i + 11)) "$i" 3) || fail "r$i: $line"
	echo "r$i peer: $line"
done
sleep 0.5

say "every replica is alive and nothing changed"
for i in 0 1 2; do
	alive "$i" || fail "r$i died"
	line=$(probe "${CLIENT_URLS[$i]}" get keep) || fail "r$i: $line"
	[[ $(kv "$line" token) == "$tok" && $(kv "$line" holder) == 1 ]] ||
		fail "r$i: $line"
	line=$(probe "${CLIENT_URLS[$i]}" status) || fail "r$i: $line"
	[[ $(kv "$line" leases) == 1 ]] || fail "r$i has other leases: $line"
	grep -q 'event=peer_refused' "$T/r$i.log" ||
		fail "r$i logged no refused peer message"
	grep -q 'event=client_malformed' "$T/r$i.log" ||
		fail "r$i logged no malformed client request"
done
line=$(probe "${CLIENT_URLS[$lead]}" status) || fail "$line"
if [[ $(kv "$line" ballot) != "$ballot" || $(kv "$line" role) != leader ]]; then
	echo "note: leadership moved during the garbage ($ballot -> $(kv "$line" ballot))"
fi
acquire_ok after 2 1 60000 >/dev/null
stop_all TERM
[[ $STOP_RC -eq 0 ]] || fail "exit status $STOP_RC after SIGTERM (leak or crash?)"
grep -h 'event=stop' "$T"/r*.log
say "ok"
