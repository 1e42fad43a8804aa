#!/usr/bin/env bash
# The HTTP/JSON API (README, "HTTP API") with curl on a real cell: a lease
# taken, refused to a second session, renewed, released; read-your-writes
# through the position header on a follower; a watch long-poll woken by a
# change; an election hand-off; paged lists; errors for bad input with the
# cell's sentence; followers redirecting writes to the leader (307), or,
# without --http-urls, answering with the leader hint.
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || fail "curl is needed (tools/install-deps)"
command -v jq >/dev/null || fail "jq is needed (tools/install-deps)"

start_http_cell
lead=$(wait_leader)
fol=$(((lead + 1) % 3))
L=${HTTP_URLS[$lead]}
F=${HTTP_URLS[$fol]}
say "leader r$lead ($L), follower r$fol ($F)"

# req METHOD URL [curl args...]: the body in $BODY, the status code in
# $CODE, the headers in $T/h. While an election is under way (no leader
# known: a loaded machine can depose one), it is asked again, as a client
# would.
req() {
	local m=$1 u=$2 try follow=()
	shift 2
	# (at the leader, follow a redirect should leadership have moved)
	[[ $u == "$L"/* ]] && follow=(-L)
	for try in $(seq 50); do
		BODY=$(curl -sS -m 20 -X "$m" -D "$T/h" -o - -w '\n%{http_code}' \
			"${follow[@]}" "$@" "$u") ||
			fail "curl $m $u failed"
		CODE=${BODY##*$'\n'}
		BODY=${BODY%$'\n'*}
		echo "  $m ${u#http://127.0.0.1:} -> $CODE $BODY"
		[[ $CODE == 503 ]] && jq -e '.leader == -1' <<<"$BODY" >/dev/null 2>&1 ||
			return 0
		sleep 0.2
	done
}
j() { jq -r "$1" <<<"$BODY"; }
header() { tr -d '\r' <"$T/h" | sed -n "s/^$1: //Ip" | tail -n 1; }
expect() { # code [jq-expression that must be true]
	[[ $CODE == "$1" ]] || fail "expected HTTP $1, got $CODE: $BODY"
	if [[ -n ${2:-} ]]; then
		[[ $(jq -r "$2" <<<"$BODY") == true ]] || fail "expected $2: $BODY"
	fi
}

say "status on every replica; sessions"
for i in 0 1 2; do
	req GET "${HTTP_URLS[$i]}/v1/status"
	expect 200 ".replica.id == $i and .leader == $lead"
done
req POST "$F/v1/session"
expect 200 '.credentials | test("^[0-9]+:[0-9]+$")'
A=$(j .credentials)
req POST "$F/v1/session"
B=$(j .credentials)

say "a write at a follower is redirected to the leader (307)"
req POST "$F/v1/acquire/db/primary" -H "X-Lockd-Session: $A" -d '{"ttl_ms":20000}'
expect 307 '.status == "NOT_LEADER" and .leader_http != null'
[[ $(header Location) == "$L/v1/acquire/db/primary" ]] || fail "Location: $(header Location)"

say "take a lease (curl -L follows the redirect); a second session is refused"
req POST "$F/v1/acquire/db/primary" -L -H "X-Lockd-Session: $A" \
	-d '{"ttl_ms":20000,"value":"alpha:5432"}'
expect 200 '.lease_status == "GRANTED" and (.token | test("^[0-9]+$"))'
tok=$(j .token)
pos=$(header X-Lockd-Position)
[[ $pos == "$(j .position)" && $pos -gt 0 ]] || fail "position header $pos"
req POST "$L/v1/acquire/db/primary" -H "X-Lockd-Session: $B" -d '{"ttl_ms":20000}'
expect 409 ".lease_status == \"HELD\" and .holder == \"${A%%:*}\""
req POST "$L/v1/acquire/db/primary" -H "X-Lockd-Session: $B" \
	-d '{"ttl_ms":20000,"wait_ms":300}'
expect 409 '.status == "TIMEOUT" and (.error | test("still held"))'

say "read-your-writes on the follower: the position header"
req GET "$F/v1/lease/db/primary" -H "X-Lockd-Position: $pos"
expect 200 ".lease.token == \"$tok\" and .lease.value == \"alpha:5432\""
(($(header X-Lockd-Position) >= pos)) || fail "follower answered behind $pos"
req GET "$F/v1/lease/db/primary?position=999999999"
expect 503 '.status == "BEHIND" and (.error | test("not yet 999999999"))'
req GET "$L/v1/lease/db/primary?consistency=linearizable"
expect 200 '.lease.ttl_ms_left > 0'
req GET "$F/v1/lease/db/primary?consistency=stale"
expect 200
req GET "$F/v1/check/db/primary?token=$tok"
expect 200 '.current == true'
req GET "$F/v1/check/db/primary?token=1$tok"
expect 200 '.current == false'

say "renew, proclaim, paged list"
req POST "$L/v1/renew" -H "X-Lockd-Session: $A"
expect 200 ".renewed == [\"$tok\"]"
req POST "$L/v1/proclaim/db/primary" -H "X-Lockd-Session: $A" \
	-d "{\"token\":\"$tok\",\"value\":\"alpha:6543\"}"
expect 200
for n in a b c; do
	req POST "$L/v1/acquire/list/$n" -H "X-Lockd-Session: $A" -d '{"ttl_ms":20000}'
	expect 200
done
req GET "$L/v1/leases?prefix=list/&limit=2"
expect 200 '(.leases | map(.name)) == ["list/a","list/b"] and .more and .next_after == "list/b"'
req GET "$L/v1/leases?prefix=list/&after=list/b"
expect 200 '(.leases | map(.name)) == ["list/c"] and (.more | not)'

say "a watch long-poll on the follower wakes on a change"
req GET "$L/v1/lease/db/primary"
wpos=$(j .position)
expect 200 '.lease.value == "alpha:6543"'
curl -sS -m 30 "$F/v1/watch/db/primary?from=$wpos&wait_ms=20000" >"$T/watch" &
wpid=$!
sleep 1
kill -0 $wpid 2>/dev/null || fail "the watch did not wait: $(cat "$T/watch")"
t0=$SECONDS
req POST "$L/v1/release/db/primary" -H "X-Lockd-Session: $A" -d "{\"token\":\"$tok\"}"
expect 200
wait $wpid || fail "watch: $(cat "$T/watch")"
BODY=$(cat "$T/watch")
echo "  watch -> $BODY"
expect 200 '.changed and .lease == null'
((SECONDS - t0 < 5)) || fail "the watch woke after $((SECONDS - t0)) s"
req GET "$F/v1/watch/db/primary?from=$(j .position)&wait_ms=200"
expect 200 '.changed == false and .status == "TIMEOUT"'

say "an election: the first candidate leads, the second waits and takes over"
req POST "$L/v1/acquire/elect/svc" -H "X-Lockd-Session: $A" -d '{"ttl_ms":5000,"value":"node-a"}'
expect 200
etok=$(j .token)
curl -sS -m 30 -X POST -H "X-Lockd-Session: $B" -d '{"ttl_ms":5000,"wait_ms":20000,"value":"node-b"}' \
	"$L/v1/acquire/elect/svc" >"$T/cand" &
cpid=$!
sleep 1
req GET "$F/v1/lease/elect/svc"
expect 200 '.lease.value == "node-a"'
req POST "$L/v1/release/elect/svc" -H "X-Lockd-Session: $A" -d "{\"token\":\"$etok\"}"
wait $cpid || fail "candidate: $(cat "$T/cand")"
BODY=$(cat "$T/cand")
echo "  candidate b -> $BODY"
expect 200 '.lease_status == "GRANTED"'
req GET "$L/v1/lease/elect/svc"
expect 200 '.lease.value == "node-b"'

say "revoke with a reason"
req POST "$L/v1/revoke/list/c" -d '{"reason":"maintenance window"}'
expect 200
req GET "$L/v1/lease/list/c"
expect 200 '.lease.revoked and .lease.revoke_reason == "maintenance window"'

say "bad input: JSON errors with a sentence, the cell's TTL sentence, limits"
req POST "$L/v1/acquire/x" -H "X-Lockd-Session: $A" -d '{"ttl_ms":1000,}'
expect 400 '.status == "INVALID" and (.error | test("malformed JSON body at byte 15"))'
req POST "$L/v1/acquire/x" -H "X-Lockd-Session: $A" -d '{"ttl_ms":600000}'
expect 400 '.lease_status == "E_TTL" and (.error | test("between 100 and 60000 ms"))'
req POST "$L/v1/acquire/x" -H "X-Lockd-Session: $A" -d '{"ttl_ms":"ten"}'
expect 400 '.error | test("ttl_ms. wants a whole number")'
req POST "$L/v1/acquire/x" -H "X-Lockd-Session: $A" -d '{"ttl_ms":1000,"colour":"red"}'
expect 400 '.error | test("unknown field .colour.")'
req POST "$L/v1/acquire/x" -d '{"ttl_ms":1000}'
expect 400 '.error | test("needs a session")'
req POST "$L/v1/acquire/x" -H "X-Lockd-Session: 1:2" -d '{"ttl_ms":1000,"wait_ms":600000}'
expect 400 '.error | test("wait_ms. wants a whole number from 0 to 60000")'
req POST "$L/v1/acquire/bad%00name" -H "X-Lockd-Session: $A" -d '{"ttl_ms":1000}'
expect 400 '.error | test("NUL")'
head -c 70000 /dev/zero | tr '\0' a >"$T/big"
req POST "$L/v1/acquire/x" -H "X-Lockd-Session: $A" --data-binary @"$T/big"
expect 413 '.error | test("over this API.s limit of 65536")'
req GET "$L/v1/nothing"
expect 404 '.error | test("no such endpoint")'
req GET "$L/v1/acquire/x"
expect 405
req GET "$L/v1/lease/x?position=-1"
expect 400

say "a follower without --http-urls answers with the leader hint"
stop_replica "$fol"
start_replica "$fol" --http "$F"
for _ in $(seq 50); do
	curl -s -m 2 "$F/v1/status" | jq -e ".leader == $lead" >/dev/null 2>&1 && break
	sleep 0.2
done
req POST "$F/v1/acquire/x" -H "X-Lockd-Session: $A" -d '{"ttl_ms":1000}'
expect 503 ".status == \"NOT_LEADER\" and .leader == $lead and .leader_http == null and (.error | test(\"ask replica $lead\"))"
[[ $(header Retry-After) == 1 ]] || fail "no Retry-After"

say "the status page is served at /"
req GET "$L/"
expect 200
grep -q '<title>lockd' <<<"$BODY" || fail "no status page"

stop_all
[[ $STOP_RC -eq 0 ]] || fail "a replica exited with $STOP_RC"
say "ok"
