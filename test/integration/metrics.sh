#!/usr/bin/env bash
# /metrics as Prometheus users expect it (issue 12 item 4), on a real cell
# after some traffic: the page parses under a strict checker (promtool's
# when it is installed, else metrics-check.py beside this script: a TYPE
# for every sample, counters named _total, histogram buckets cumulative and
# ending with +Inf equal to _count); request latency by operation, decree
# commit latency at the leader and disk sync duration have observations;
# leases held, waiters and sessions are what the cell holds.
. "$(dirname "$0")/lib.sh"
LOCKCTL=$(realpath "$3")
CHECK=$(dirname "$(realpath "$0")")/metrics-check.py
lc() { "$LOCKCTL" -e "$CLIENTS" "$@"; }

mapfile -t HPORTS < <("$LOCKD" --free-ports 3)
replica_flags() { printf '%s\n' --http "http://127.0.0.1:${HPORTS[$1]}"; }
page() { # id: the body of /metrics
	http_get "http://127.0.0.1:${HPORTS[$1]}" /metrics | tr -d '\r' | sed '1,/^$/d'
}
metric() { # id sample: its value
	page "$1" | awk -v s="$2" '$1 == s { print $2 }'
}

start_all
lead=$(wait_leader)

say "traffic: acquire, get, ls, a waiter, release"
out=$(lc acquire m/a --ttl 30s --value v) || fail "acquire: $out"
sess=$(kv "$out" session)
tok=$(kv "$out" token)
lc get m/a >/dev/null || fail "get"
lc ls m/ >/dev/null || fail "ls"
lc acquire m/a --ttl 30s --wait 20s >"$T/waiter.out" 2>&1 &
waiter=$!
for _ in $(seq 50); do
	[[ $(metric "$lead" lockd_lease_waiters) == 1 ]] && break
	sleep 0.1
done
[[ $(metric "$lead" lockd_lease_waiters) == 1 ]] ||
	fail "lockd_lease_waiters: $(metric "$lead" lockd_lease_waiters)"
[[ $(metric "$lead" lockd_leases_held) == 1 ]] || fail "lockd_leases_held"
[[ $(metric "$lead" lockd_sessions) -ge 2 ]] ||
	fail "lockd_sessions: $(metric "$lead" lockd_sessions)"
lc release m/a --token "$tok" --session "$sess" >/dev/null || fail "release"
wait "$waiter" || fail "the waiter: $(cat "$T/waiter.out")"
sleep 0.3 # a metrics snapshot is at most 100 ms old

say "every replica's page parses"
for i in 0 1 2; do
	page "$i" >"$T/metrics.$i"
	if command -v promtool >/dev/null; then
		promtool check metrics <"$T/metrics.$i" || fail "promtool: r$i"
	fi
	python3 "$CHECK" <"$T/metrics.$i" || fail "r$i's page does not parse"
	c=$(awk '$1 == "lockd_disk_sync_duration_seconds_count" { print $2 }' "$T/metrics.$i")
	[[ $c -ge 1 ]] || fail "r$i: no synced write observed ($c)"
done

say "the leader observed requests by operation and commit latency"
m=$T/metrics.$lead
for op in acquire release get list; do
	c=$(awk -v s="lockd_request_duration_seconds_count{op=\"$op\"}" '$1 == s { print $2 }' "$m")
	[[ $c -ge 1 ]] || fail "no $op request observed on the leader ($c)"
done
c=$(awk '$1 == "lockd_decree_commit_duration_seconds_count" { print $2 }' "$m")
[[ $c -ge 3 ]] || fail "decree commit latency: $c observations"
grep -E '^lockd_(decree_commit|disk_sync)_duration_seconds|^lockd_request_duration_seconds_(bucket|count)\{op="acquire"' "$m" |
	grep -E 'le="0.00(1|5)"|le="0.01"|le="\+Inf"|_sum|_count'
say "ok"
