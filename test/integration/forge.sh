#!/usr/bin/env bash
# Forged peer messages change nothing on a cell with a cell key (issue 14,
# items 1-3): lockd-forge sends a well-formed SNAPSHOT (a huge base and a
# table of its own), ACCEPT (ballot round 2^64-1 with the victim's id),
# CATCHUP (29 decrees never chosen), PREPARE (round 2^62) and PROBE to every
# replica, first with no MAC at all, then signed with a wrong key, then with
# the right key made for another cell id. Every one is refused before the
# codec sees it (peer_refused in the log and in /metrics); ballot, leases
# and tokens stay as they were, and the cell keeps granting.
# Then, with --insecure-peers and no key, a forged ACCEPT whose round is above
# PX_ROUND_MAX is still refused by the codec (defence in depth), and the
# cell keeps its leader.
# Args: lockd lockd-probe lockd-forge.
. "$(dirname "$0")/lib.sh"
FORGE=$(realpath "$3")

mapfile -t HP < <("$LOCKD" --free-ports 3)
HTTP_URLS=()
for i in 0 1 2; do HTTP_URLS+=("http://127.0.0.1:${HP[$i]}"); done
replica_flags() { printf '%s\n' --http "${HTTP_URLS[$1]}" --cell-id 9; }

refused() { # id: lockd_peer_refused_total on r<id>'s /metrics
	local page
	page=$(http_get "${HTTP_URLS[$1]}" /metrics) || fail "r$1 /metrics"
	awk '$1 == "lockd_peer_refused_total" {print $2}' <<<"${page//$'\r'/}"
}

snapshot_state() { # one line per replica: ballot and leases, and keep's token
	local i line
	for i in 0 1 2; do
		line=$(probe "${CLIENT_URLS[$i]}" status) || fail "r$i: $line"
		# An election under load may move the ballot a little; a
		# forged one would move it past 2^32.
		b=$(kv "$line" ballot)
		((${b%%.*} < 4294967296)) && b=ordinary
		printf 'r%s ballot=%s leases=%s ' "$i" "$b" \
			"$(kv "$line" leases)"
		line=$(probe "${CLIENT_URLS[$i]}" get keep) || fail "r$i: $line"
		printf 'keep=%s/%s\n' "$(kv "$line" holder)" "$(kv "$line" token)"
	done
}

say "start 3 replicas with a cell key (cell 9), grant one lease"
start_all
lead=$(wait_leader)
acquire_ok keep 1 1 60000 >/dev/null
for i in 0 1 2; do
	wait_applied "$i" "$(kv "$(probe "${CLIENT_URLS[$lead]}" status)" applied)"
done
before=$(snapshot_state)
echo "$before"
declare -A r0
for i in 0 1 2; do r0[$i]=$(refused "$i"); done

head -c 32 /dev/urandom >"$T/wrong.key" && chmod 600 "$T/wrong.key"
kinds=(snapshot accept catchup prepare probe)
sent=0
forge_all() { # label forge-flags...
	local label=$1 i k applied
	shift
	say "forged messages to every replica: $label"
	for i in 0 1 2; do
		applied=$(kv "$(probe "${CLIENT_URLS[$i]}" status)" applied)
		for k in "${kinds[@]}"; do
			local slot=()
			[[ $k == catchup ]] && slot=(--slot $((applied + 1)))
			"$FORGE" "${PEER_URLS[$i]}" "$k" --to "$i" \
				--from $(((i + 1) % 3)) "${slot[@]}" "$@" >/dev/null ||
				fail "forge $k to r$i failed"
		done
	done
	sent=$((sent + ${#kinds[@]} * 3))
}
forge_all "no MAC"
forge_all "a wrong key" --key "$T/wrong.key" --cell-id 9
forge_all "the cell's key, for another cell" --key "$PEER_KEY" --cell-id 10
sleep 1

say "nothing changed: ballot, leases, tokens; every message refused"
after=$(snapshot_state)
echo "$after"
[[ $after == "$before" ]] || fail "state changed: before
$before
after
$after"
for i in 0 1 2; do
	alive "$i" || fail "r$i died"
	n=$(refused "$i")
	echo "r$i peer_refused ${r0[$i]} -> $n"
	[[ -n $n && $n -ge $((${r0[$i]} + sent)) ]] ||
		fail "r$i refused $((n - ${r0[$i]})) of $sent forged messages"
	grep -q 'event=peer_refused.*no MAC trailer' "$T/r$i.log" ||
		fail "r$i did not say why it refused a message without a MAC"
	grep -q 'event=peer_refused.*MAC does not match' "$T/r$i.log" ||
		fail "r$i did not say why it refused a wrongly signed message"
	for name in forged/lease forged/accept forged/catchup-0; do
		line=$(probe "${CLIENT_URLS[$i]}" get "$name") || true
		[[ $(kv "$line" found) == 0 ]] || fail "r$i has $name: $line"
	done
done
acquire_ok after 2 1 60000 >/dev/null
[[ $(wait_leader) == "$lead" ]] || fail "the leader changed"

say "--insecure-peers, no key: an ACCEPT above PX_ROUND_MAX is still refused"
stop_all TERM
[[ $STOP_RC -eq 0 ]] || fail "exit $STOP_RC after SIGTERM"
rm -rf "$T"/r0 "$T"/r1 "$T"/r2
PEER_KEY_FLAGS=()
EXTRA=(--insecure-peers)
start_all
lead=$(wait_leader)
acquire_ok keep 1 1 60000 >/dev/null
for i in 0 1 2; do
	"$FORGE" "${PEER_URLS[$i]}" accept --to "$i" --from $(((i + 1) % 3)) \
		--round $(((1 << 62) + 1)) >/dev/null || fail "forge to r$i"
done
sleep 1
for i in 0 1 2; do
	grep -q 'event=peer_refused.*px_msg_validate' "$T/r$i.log" ||
		fail "r$i did not refuse the out-of-range ballot"
done
wait_leader >/dev/null
acquire_ok after 2 1 60000 >/dev/null
stop_all TERM
[[ $STOP_RC -eq 0 ]] || fail "exit $STOP_RC after SIGTERM"
say "ok"
