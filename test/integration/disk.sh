#!/usr/bin/env bash
# A replica's disk goes bad while the cell serves on.
#  1. A byte flipped in a stopped replica's records (lockd-tamper, its 4th
#     argument): the replica notices at start, says so in exactly one
#     store_corrupt line, moves the directory aside, starts empty (never
#     from the damaged state), and catches up from the others. The same
#     for its write-ahead log cut to half its length after a clean stop.
#  2. A replica's data directory on an 8 MiB tmpfs, filled up: it logs a
#     storage_stalled line naming the cause, /health says 503 and why,
#     /metrics says lockd_storage_stalled 1, and the other two keep
#     serving writes through lockctl (3rd argument); once the space is
#     back it logs storage_recovered, /health is 200 again and it applies
#     the latest position. Skipped, with a line saying so, where tmpfs
#     cannot be mounted (not root).
. "$(dirname "$0")/lib.sh"
LOCKCTL=$(realpath "$3")
TAMPER=$(realpath "$4")

MNT=""
disk_cleanup() {
	local rc=$? i
	if [[ -n $MNT ]]; then
		for i in 0 1 2; do
			if [[ -f "$T/r$i.pid" ]]; then
				kill -KILL "$(cat "$T/r$i.pid")" 2>/dev/null || true
			fi
		done
		wait 2>/dev/null || true
		umount -l "$MNT" 2>/dev/null || true
	fi
	(exit $rc)
	cleanup
}
trap disk_cleanup EXIT

lc() { "$LOCKCTL" -e "$CLIENTS" "$@"; }

mapfile -t HP < <("$LOCKD" --free-ports 3)
HTTP_URLS=()
for i in 0 1 2; do HTTP_URLS+=("http://127.0.0.1:${HP[$i]}"); done
start_http() { start_replica "$1" --http "${HTTP_URLS[$1]}"; }

health_code() { # id: the HTTP status /health answers
	http_get "${HTTP_URLS[$1]}" /health 2>/dev/null | sed -n '1s/^HTTP\/1\.1 \([0-9]*\).*/\1/p'
}

# The victim's log since its last start_http (each start appends).
MARK=0
since() { tail -n +$((MARK + 1)) "$T/r$v.log"; }
start_victim() {
	MARK=$(wc -l <"$T/r$v.log")
	start_http "$v"
}

wait_log() { # pattern timeout_s: in the victim's log since its start
	local deadline=$((SECONDS + $2))
	while ((SECONDS < deadline)); do
		since | grep -- "$1" >/dev/null && return 0
		sleep 0.2
	done
	fail "r$v never logged '$1'"
}

leader_applied() { # the position the leader has applied
	local lead line
	lead=$(wait_leader)
	line=$(probe "${CLIENT_URLS[$lead]}" status) || fail "status: $line"
	kv "$line" applied
}

say "start 3 replicas, grant 20 leases"
for i in 0 1 2; do start_http "$i"; done
lead=$(wait_leader)
: >"$T/granted"
for k in $(seq 1 20); do
	echo "lease-$k $(acquire_ok "lease-$k" $((100 + k % 3)) "$k" 60000)" >>"$T/granted"
done
# The victim is a follower, so that the cell keeps its leader throughout.
v=$(((lead + 1) % 3))
wait_applied "$v" "$(leader_applied)"

say "part 1: flip a byte in stopped r$v's promise and first vote"
stop_replica "$v" TERM
[[ $STOP_RC -eq 0 ]] || fail "r$v exit status $STOP_RC"
"$TAMPER" "$T/r$v" acceptor || fail "tamper acceptor"
"$TAMPER" "$T/r$v" ledger || say "(no vote left to flip: the snapshot covers them)"
start_victim
wait_log "event=start " 15
[[ $(since | grep -c "event=store_corrupt") -eq 1 ]] ||
	fail "want exactly one store_corrupt line: $(since | grep store_corrupt)"
line=$(since | grep "event=store_corrupt")
say "logged: $line"
[[ $line == *"level=error"* && $line == *"data=$T/r$v "* &&
	$line == *"checksum"* && $line == *"moved_to=$T/r$v.corrupt-"* ]] ||
	fail "store_corrupt line: $line"
aside=$(ls -d "$T/r$v".corrupt-* 2>/dev/null | head -n 1)
[[ -n $aside && -f $aside/CURRENT ]] || fail "the damaged directory was not kept aside"
# It restored nothing from the damaged directory: not the old state.
since | grep "event=restored" | grep "records=0 snapshot_base=0 applied=0 " >/dev/null ||
	fail "r$v restored from a damaged store: $(since | grep event=restored)"
say "it starts empty and catches up from the others"
k=21
echo "lease-$k $(acquire_ok "lease-$k" 101 "$k" 60000)" >>"$T/granted"
wait_applied "$v" "$(leader_applied)" 20
tok=$(awk '$1 == "lease-7" {print $2}' "$T/granted")
line=$(probe "${CLIENT_URLS[$v]}" get lease-7 "$(leader_applied)") || fail "get: $line"
[[ $(kv "$line" token) == "$tok" ]] || fail "lease-7 had token $tok, r$v says: $line"

say "part 1b: stop r$v cleanly, cut its write-ahead log to half its length"
stop_replica "$v" TERM
[[ $STOP_RC -eq 0 ]] || fail "r$v exit status $STOP_RC"
wal=$(ls -S "$T/r$v"/*.log | head -n 1)
size=$(stat -c %s "$wal")
((size > 100)) || fail "r$v's WAL is only $size bytes"
truncate -s $((size / 2)) "$wal"
start_victim
wait_log "event=start " 15
line=$(since | grep "event=store_corrupt") || fail "the cut WAL went unnoticed: $(since | grep restored)"
say "logged: $line"
[[ $line == *"lost records that were synced"* ]] || fail "store_corrupt line: $line"
since | grep "event=restored" | grep "records=0 " >/dev/null || fail "r$v restored from the cut WAL"
wait_applied "$v" "$(leader_applied)" 20

say "part 2: r$v's data directory on an 8 MiB tmpfs"
stop_replica "$v" TERM
[[ $STOP_RC -eq 0 ]] || fail "r$v exit status $STOP_RC"
mv "$T/r$v" "$T/r$v.disk"
mkdir "$T/r$v"
# Few inodes as well as few bytes: a RocksDB reopen truncates the WAL's
# preallocated tail, which frees bytes, but it needs new files, so with
# both used up the replica stays stalled until the test frees them.
if ! mount -t tmpfs -o size=8m,nr_inodes=128 tmpfs "$T/r$v" 2>"$T/mount.err"; then
	echo "SKIP part 2 (full disk): cannot mount a tmpfs here: $(cat "$T/mount.err")"
	exit 0
fi
MNT="$T/r$v"
cp -a "$T/r$v.disk/." "$T/r$v/"
start_victim
wait_applied "$v" "$(leader_applied)" 20
for _ in $(seq 50); do
	[[ $(health_code "$v") == 200 ]] && break
	sleep 0.2
done
[[ $(health_code "$v") == 200 ]] || fail "r$v /health before filling: $(http_get "${HTTP_URLS[$v]}" /health)"

say "fill it up; the cell keeps serving writes through lockctl"
dd if=/dev/zero of="$T/r$v/filler" bs=64k >/dev/null 2>&1 || true
mkdir "$T/r$v/inodes"
for i in $(seq 200); do : 2>/dev/null >"$T/r$v/inodes/$i" || break; done
for k in $(seq 22 40); do
	lc acquire "full-$k" --ttl 60s >"$T/out" 2>"$T/err" ||
		fail "lockctl acquire full-$k with r$v's disk full: $(cat "$T/out" "$T/err")"
done
wait_log "event=storage_stalled" 10
line=$(since | grep "event=storage_stalled" | head -n 1)
say "logged: $line"
[[ $line == *"level=error"* && $line == *"No space left on device"* ]] ||
	fail "storage_stalled line: $line"
page=$(http_get "${HTTP_URLS[$v]}" /health) || true
say "/health: $(head -n 1 <<<"$page" | tr -d '\r') $(tail -n 1 <<<"$page")"
[[ $page == "HTTP/1.1 503"* && $page == *'"storage_stalled":true'* &&
	$page == *"No space left on device"* ]] || fail "/health while stalled: $page"
page=$(http_get "${HTTP_URLS[$v]}" /metrics) || true
grep -q "^lockd_storage_stalled 1" <<<"$page" || fail "/metrics while stalled: $(grep storage <<<"$page")"
alive "$v" || fail "r$v exited on a full disk"
lc acquire full-last --ttl 60s >"$T/out" 2>"$T/err" || fail "acquire: $(cat "$T/err")"
target=$(leader_applied)
line=$(probe "${CLIENT_URLS[$v]}" status) || fail "status of the stalled replica: $line"
[[ $(kv "$line" applied) -lt $target ]] || fail "r$v applied while stalled: $line"

say "free the space: r$v recovers"
rm -rf "$T/r$v/filler" "$T/r$v/inodes"
wait_log "event=storage_recovered" 10
say "logged: $(since | grep "event=storage_recovered" | head -n 1)"
wait_applied "$v" "$target" 20
for _ in $(seq 50); do
	[[ $(health_code "$v") == 200 ]] && break
	sleep 0.2
done
[[ $(health_code "$v") == 200 ]] || fail "r$v /health after recovery: $(http_get "${HTTP_URLS[$v]}" /health)"
page=$(http_get "${HTTP_URLS[$v]}" /metrics) || true
grep -q "^lockd_storage_stalled 0" <<<"$page" || fail "/metrics after recovery"
[[ $(since | grep -c "level=error.*event=storage_stalled") -eq 1 ]] ||
	fail "want one stall: $(since | grep storage_stalled)"

say "and its disk holds what it acknowledged: stop it, start it, same position"
stop_replica "$v" TERM
[[ $STOP_RC -eq 0 ]] || fail "r$v exit status $STOP_RC after the stall"
start_victim
wait_applied "$v" "$target" 20
if grep -q "Assertion" "$T/r$v.log"; then fail "an assertion in r$v.log"; fi
stop_all TERM
[[ $STOP_RC -eq 0 ]] || fail "exit status $STOP_RC after SIGTERM"
say "ok"
