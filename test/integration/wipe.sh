#!/usr/bin/env bash
# The fork the recovery rule exists for, on real processes: a replica's data
# directory is wiped while another replica is stopped. The wiped one must not
# vote with the third (its lost votes may be the only record of a grant), so
# the cell takes no writes until the stopped one is back; then the wiped one
# recovers, every acknowledged grant is still there on every replica, and the
# recovered replica counts toward a quorum.
. "$(dirname "$0")/lib.sh"

say "start 3 replicas, grant 20 leases"
start_all
lead=$(wait_leader)
for k in $(seq 1 20); do acquire_ok "w-$k" 41 "$k" 60000 >/dev/null; done
line=$(probe "${CLIENT_URLS[$lead]}" status) || fail "$line"
commit=$(kv "$line" commit)
wiped=$(((lead + 1) % 3))
down=$(((lead + 2) % 3))

say "stop r$down; kill -9 r$wiped, wipe its directory, restart it"
stop_replica "$down" TERM
stop_replica "$wiped" KILL
rm -rf "$T/r$wiped"
start_replica "$wiped"
sleep 3
line=$(probe "${CLIENT_URLS[$wiped]}" status) || fail "$line"
[[ $(kv "$line" role) == recovering ]] || fail "r$wiped votes at once: $line"
say "r$wiped: $line"
if line=$(LOCKD_PROBE_TIMEOUT_MS=2000 probe "$CLIENTS" acquire w-blocked 42 1 60000 2>&1) &&
	[[ $(kv "$line" lease_status) == GRANTED ]]; then
	fail "a write was granted by r$lead and the wiped r$wiped: $line"
fi
say "no quorum without r$down: $line"

say "r$down returns: r$wiped recovers and serves every grant"
start_replica "$down"
wait_voter "$wiped" 30
lead=$(wait_leader 20)
line=$(probe "${CLIENT_URLS[$lead]}" status) || fail "$line"
commit=$(kv "$line" commit)
wait_applied "$wiped" "$commit" 20
for i in 0 1 2; do
	for k in 1 10 20; do
		line=$(probe "${CLIENT_URLS[$i]}" get "w-$k" "$commit") || fail "$line"
		[[ $(kv "$line" found) == 1 ]] || fail "r$i lost w-$k: $line"
	done
done
grep -q 'event=joined' "$T/r$wiped.log" || fail "r$wiped did not log joined"

say "the recovered replica counts: stop a voter, the cell still grants"
other=$(((wiped + 1) % 3))
[[ $other == "$lead" ]] && other=$(((wiped + 2) % 3))
stop_replica "$other" KILL
wait_leader 20 >/dev/null
acquire_ok after-recovery 43 1 60000 >/dev/null
say "ok"
