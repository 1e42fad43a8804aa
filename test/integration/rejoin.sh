#!/usr/bin/env bash
# A replica whose data directory was wiped rejoins: the leader has compacted
# its log past anything catch-up could send (snapshots every 16 slots, 64
# slots of tail), so the replica installs a snapshot and then follows.
. "$(dirname "$0")/lib.sh"

EXTRA=(--snapshot-every 16)
say "start 3 replicas (snapshot every 16 slots)"
start_all
lead=$(wait_leader)
wiped=$(((lead + 1) % 3))
for k in $(seq 1 10); do acquire_ok "early-$k" 21 "$k" 60000 >/dev/null; done

say "kill -9 r$wiped and wipe its data directory"
stop_replica "$wiped" KILL
rm -rf "$T/r$wiped"

say "push the ledger well past the log tail"
for k in $(seq 1 130); do acquire_ok "late-$k" $((22 + k / 100)) "$k" 60000 >/dev/null; done
line=$(probe "${CLIENT_URLS[$lead]}" status) || fail "$line"
commit=$(kv "$line" commit)
base=$(kv "$line" snapshot_base)
[[ $base -gt 80 ]] || fail "the leader has not compacted enough: $line"
say "leader commit $commit, snapshot base $base"

say "restart r$wiped on an empty directory: it recovers before it votes"
start_replica "$wiped"
wait_applied "$wiped" "$commit" 20
grep -q 'event=snapshot_installed' "$T/r$wiped.log" ||
	fail "r$wiped caught up without installing a snapshot"
grep -q 'event=recovering' "$T/r$wiped.log" ||
	fail "r$wiped did not say it was recovering"
wait_voter "$wiped" 20
grep -q 'event=joined' "$T/r$wiped.log" || fail "r$wiped did not log joined"
for name in early-1 early-10 late-1 late-130; do
	line=$(probe "${CLIENT_URLS[$wiped]}" get "$name" "$commit") || fail "$line"
	[[ $(kv "$line" found) == 1 ]] || fail "r$wiped lacks $name: $line"
done

say "the rejoined replica is a full member: kill another, the cell goes on"
stop_replica "$lead" KILL
wait_leader >/dev/null
acquire_ok after-rejoin 30 1 60000 >/dev/null
line=$(probe "${CLIENT_URLS[$wiped]}" status) || fail "$line"
say "ok ($(kv "$line" role) at applied $(kv "$line" applied))"
