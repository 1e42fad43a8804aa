#!/usr/bin/env bash
# kill -9 the leader: the other two elect a new one, which keeps the leases
# granted before and grants new ones; the old leader, restarted on its data,
# catches up and serves reads at the newest position.
. "$(dirname "$0")/lib.sh"

say "start 3 replicas"
start_all
old=$(wait_leader)
say "leader is r$old"
tok1=$(acquire_ok before 11 1 60000)
for k in $(seq 1 20); do acquire_ok "pre-$k" 12 "$k" 60000 >/dev/null; done

say "kill -9 the leader"
t0=$SECONDS
stop_replica "$old" KILL
new=$(wait_leader)
[[ $new != "$old" ]] || fail "the dead replica still leads"
say "new leader is r$new after ~$((SECONDS - t0)) s"

say "the new leader keeps the old grant and grants"
line=$(probe "$CLIENTS" acquire before 13 1 60000) || fail "$line"
[[ $(kv "$line" lease_status) == HELD && $(kv "$line" holder) == 11 ]] ||
	fail "a lease granted before failover was lost: $line"
tok2=$(acquire_ok after 14 1 60000)
[[ $tok2 -gt $tok1 ]] || fail "token went backwards: $tok1 then $tok2"
for k in $(seq 1 40); do acquire_ok "post-$k" 15 "$k" 60000 >/dev/null; done
line=$(probe "${CLIENT_URLS[$new]}" status) || fail "$line"
commit=$(kv "$line" commit)

say "restart the old leader: it catches up (commit $commit)"
start_replica "$old"
wait_applied "$old" "$commit" 20
line=$(probe "${CLIENT_URLS[$old]}" get post-40 "$commit") || fail "$line"
[[ $(kv "$line" found) == 1 && $(kv "$line" holder) == 15 ]] ||
	fail "the restarted replica does not have the new grant: $line"
line=$(probe "${CLIENT_URLS[$old]}" get before) || fail "$line"
[[ $(kv "$line" token) == "$tok1" ]] || fail "old grant on restarted replica: $line"
lead=$(wait_leader)
[[ $lead == "$new" ]] || say "(leadership moved to r$lead after the restart)"

say "kill -9 the new leader too: the two left still make progress"
stop_replica "$new" KILL
third=$(wait_leader)
tok3=$(acquire_ok third 16 1 60000)
[[ $tok3 -gt $tok2 ]] || fail "token went backwards: $tok2 then $tok3"
line=$(probe "$CLIENTS" acquire after 17 1 60000) || fail "$line"
[[ $(kv "$line" holder) == 14 ]] || fail "grant lost in the second failover: $line"
say "ok (leaders r$old -> r$new -> r$third)"
