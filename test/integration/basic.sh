#!/usr/bin/env bash
# A cell comes up, elects one leader, grants, answers reads on every replica
# (after catching up to the client's position), queues a waiting acquire and
# hands the name on at release, renews, lists, and shuts down cleanly.
. "$(dirname "$0")/lib.sh"

say "start 3 replicas (with /health and /metrics)"
mapfile -t HP < <("$LOCKD" --free-ports 3)
HTTP_URLS=()
for i in 0 1 2; do
	HTTP_URLS+=("http://127.0.0.1:${HP[$i]}")
	start_replica "$i" --http "${HTTP_URLS[$i]}"
done
lead=$(wait_leader)
say "leader is r$lead"

say "acquire and conflict"
line=$(probe "$CLIENTS" acquire alpha 101 1 30000) || fail "$line"
[[ $(kv "$line" lease_status) == GRANTED ]] || fail "acquire: $line"
tok=$(kv "$line" token)
pos=$(position_of "$line")
line=$(probe "$CLIENTS" acquire alpha 102 1 30000) || fail "$line"
[[ $(kv "$line" lease_status) == HELD && $(kv "$line" holder) == 101 ]] ||
	fail "a second session got: $line"

say "a retried acquire (same session, seq) is answered, not granted twice"
line=$(probe "$CLIENTS" acquire alpha 101 1 30000) || fail "$line"
[[ $(kv "$line" lease_status) =~ ^(GRANTED|OK)$ ]] || fail "retry: $line"

say "every replica reads the grant at the client's position"
for i in 0 1 2; do
	line=$(probe "${CLIENT_URLS[$i]}" get alpha "$pos") || fail "r$i get: $line"
	[[ $(kv "$line" found) == 1 && $(kv "$line" token) == "$tok" &&
		$(kv "$line" holder) == 101 ]] || fail "r$i get: $line"
	line=$(probe "${CLIENT_URLS[$i]}" check alpha "$tok") || fail "r$i check: $line"
	[[ $(kv "$line" lease_status) == OK ]] || fail "r$i check: $line"
done
line=$(probe "${CLIENT_URLS[$lead]}" get alpha) || fail "$line"
left=$(kv "$line" ttl_ms_left)
[[ $left -gt 0 && $left -le 30000 ]] || fail "leader's ttl_ms_left: $line"

say "a read ahead of the replica waits, then says BEHIND"
follower=$(((lead + 1) % 3))
line=$(probe "${CLIENT_URLS[$follower]}" get alpha 999999) && fail "read ahead: $line"
[[ $(kv "$line" status) == BEHIND ]] || fail "read ahead: $line"

say "a writer at a follower is sent to the leader"
line=$(probe "${CLIENT_URLS[$follower]},${CLIENT_URLS[$lead]}" acquire beta 103 1 5000) ||
	fail "$line"
[[ $(kv "$line" lease_status) == GRANTED && $(kv "$line" attempts) -ge 1 ]] ||
	fail "via follower: $line"

say "a waiting acquire is granted at release"
line=$(probe "$CLIENTS" acquire gamma 201 1 30000) || fail "$line"
gtok=$(kv "$line" token)
probe "$CLIENTS" acquire gamma 202 1 30000 8000 >"$T/waiter.out" &
waiter=$!
sleep 0.5
line=$(probe "$CLIENTS" release gamma 201 2 "$gtok") || fail "release: $line"
wait "$waiter" || fail "waiter: $(cat "$T/waiter.out")"
line=$(cat "$T/waiter.out")
[[ $(kv "$line" lease_status) == GRANTED ]] || fail "waiter: $line"
[[ $(kv "$line" token) -gt $gtok ]] || fail "fencing token did not grow: $line"

say "the same (session, seq) waiting twice (a REQ resend): both answered"
line=$(probe "$CLIENTS" acquire delta 204 1 30000) || fail "$line"
dtok=$(kv "$line" token)
probe "$CLIENTS" acquire delta 205 1 30000 8000 >"$T/dup1.out" &
dup1=$!
probe "$CLIENTS" acquire delta 205 1 30000 8000 >"$T/dup2.out" &
dup2=$!
sleep 0.5
line=$(probe "$CLIENTS" release delta 204 2 "$dtok") || fail "release: $line"
wait "$dup1" || fail "first copy: $(cat "$T/dup1.out")"
wait "$dup2" || fail "second copy: $(cat "$T/dup2.out")"
t1=$(kv "$(cat "$T/dup1.out")" token)
t2=$(kv "$(cat "$T/dup2.out")" token)
[[ $(kv "$(cat "$T/dup1.out")" lease_status) == GRANTED && $t1 == "$t2" ]] ||
	fail "copies answered differently: $(cat "$T/dup1.out") / $(cat "$T/dup2.out")"

say "a waiting acquire times out while the name stays held"
line=$(probe "$CLIENTS" acquire gamma 203 1 30000 300) && fail "timeout: $line"
[[ $(kv "$line" status) == TIMEOUT && $(kv "$line" holder) == 202 ]] ||
	fail "timeout: $line"

say "renew, release, invalid requests"
line=$(probe "$CLIENTS" renew 101 3) || fail "renew: $line"
[[ $(kv "$line" renewed) == "$tok" ]] || fail "renew: $line"
line=$(probe "$CLIENTS" release alpha 101 4 $((tok + 1000))) || fail "$line"
[[ $(kv "$line" lease_status) == NOT_HOLDER ]] || fail "stale release: $line"
line=$(probe "$CLIENTS" release alpha 101 5 "$tok") || fail "$line"
line=$(probe "$CLIENTS" get alpha "$(position_of "$line")") || fail "$line"
[[ $(kv "$line" found) == 0 ]] || fail "released but still there: $line"
line=$(probe "$CLIENTS" acquire 'bad name' 104 1 1000) && fail "$line"
[[ $(kv "$line" status) == INVALID && $(kv "$line" lease_status) == E_NAME ]] ||
	fail "bad name: $line"
line=$(probe "$CLIENTS" acquire epsilon 0 1 1000) && fail "$line"
[[ $(kv "$line" status) == INVALID ]] || fail "session 0: $line"
line=$(probe "$CLIENTS" acquire epsilon 105 1 99) && fail "$line"
[[ $(kv "$line" lease_status) == E_TTL ]] || fail "ttl: $line"

say "list and status"
line=$(probe "${CLIENT_URLS[$lead]}" list g) || fail "$line"
[[ $(kv "$line" count) == 1 && $(kv "$line" first_name) == gamma ]] ||
	fail "list: $line"
line=$(probe "${CLIENT_URLS[$lead]}" status) || fail "$line"
[[ $(kv "$line" role) == leader && $(kv "$line" leases) == 3 ]] ||
	fail "status: $line"

say "latency (this machine, this build)"
probe "$CLIENTS" bench 300 || fail "bench"

say "/health and /metrics on every replica; garbage on the HTTP port"
for i in 0 1 2; do
	page=$(http_get "${HTTP_URLS[$i]}" /health) || fail "r$i /health: $page"
	[[ $page == "HTTP/1.1 200"* && $page == *'"health":true'* &&
		$page == *"\"leader\":$lead,"* ]] || fail "r$i /health: $page"
done
page=$(http_get "${HTTP_URLS[$lead]}" /metrics) || fail "/metrics: $page"
grep -q '^lockd_role{role="leader"} 1' <<<"$page" || fail "/metrics role: $page"
grep -Eq '^lockd_leases_held [1-9]' <<<"$page" || fail "/metrics leases: $page"
grep -Eq '^lockd_grants_total [1-9]' <<<"$page" || fail "/metrics grants: $page"
grep -Eq '^lockd_client_requests_total [1-9]' <<<"$page" || fail "/metrics: $page"
page=$(http_get "${HTTP_URLS[0]}" /nothing) || true
[[ $page == "HTTP/1.1 404"* ]] || fail "/nothing: $page"
hp=${HTTP_URLS[0]#http://}
for _ in $(seq 20); do
	head -c 3000 /dev/urandom >"/dev/tcp/${hp%:*}/${hp##*:}" 2>/dev/null || true
done
# (a subshell that ignores SIGPIPE: the server may close mid-write)
(
	trap '' PIPE
	printf 'GET /%s HTTP/1.1\r\n\r\n' "$(head -c 9000 /dev/zero | tr '\0' a)" \
		>"/dev/tcp/${hp%:*}/${hp##*:}"
) 2>/dev/null || true
page=$(http_get "${HTTP_URLS[0]}" /health) || fail "r0 /health after garbage: $page"
[[ $page == "HTTP/1.1 200"* ]] || fail "r0 /health after garbage: $page"

say "1000 waiting watches: the replica keeps contexts for everyone else"
line=$(probe "${CLIENT_URLS[$lead]}" flood 1000) || fail "flood: $line"
echo "$line"
[[ $(kv "$line" sent) == 1000 && $(kv "$line" get) == OK &&
	$(kv "$line" extra_watch) == BUSY ]] || fail "flood: $line"
# all but the reserve wait; the rest are told BUSY at once
[[ $(kv "$line" answered_early) -ge 40 && $(kv "$line" answered_early) -le 100 ]] ||
	fail "flood: $line"

say "SIGTERM: every replica exits 0"
stop_all TERM
[[ $STOP_RC -eq 0 ]] || fail "a replica exited $STOP_RC after SIGTERM"
for i in 0 1 2; do
	grep -q 'event=stop reason=signal' "$T/r$i.log" || fail "r$i: no stop line"
done
say "ok"
