#!/usr/bin/env bash
# The programs in liblockclient/examples do what their README says, on a
# real cell: take_lease works under its lease and releases it; of two
# elect_primary instances one is primary, and when it is stopped the other
# takes over at once (resign, not expiry); fenced_store refuses the stale
# holder's late write.
. "$(dirname "$0")/lib.sh"
LOCKCTL=$(realpath "$3")
TAKE=$(realpath "$4")
ELECT=$(realpath "$5")
FENCED=$(realpath "$6")
lc() { "$LOCKCTL" -e "$CLIENTS" "$@"; }

start_all
wait_leader >/dev/null

say "take_lease: works under the lease for 2 s, then releases it"
"$TAKE" "$CLIENTS" jobs/nightly 2 >"$T/take.out" 2>&1 ||
	fail "take_lease exited $?: $(cat "$T/take.out")"
grep -q "): released" "$T/take.out" || fail "take_lease: $(cat "$T/take.out")"
# (lockctl is a new client: a follower a decree behind may answer first.)
for _ in $(seq 30); do
	rc=0
	lc get jobs/nightly >/dev/null 2>&1 || rc=$?
	[[ $rc -eq 3 ]] && break
	sleep 0.1
done
[[ $rc -eq 3 ]] || fail "jobs/nightly still held after take_lease (get exit $rc)"

say "elect_primary: two instances, one primary; stop it, the other takes over"
"$ELECT" "$CLIENTS" app/primary host-a:8080 >"$T/a.out" 2>&1 &
a=$!
for _ in $(seq 50); do
	out=$(lc leader app/primary 2>/dev/null) && break
	sleep 0.1
done
[[ $out == *value=host-a:8080* ]] || fail "leader: $out"
"$ELECT" "$CLIENTS" app/primary host-b:8080 >"$T/b.out" 2>&1 &
b=$!
sleep 0.5
out=$(lc leader app/primary) || fail "leader: $out"
[[ $out == *value=host-a:8080* ]] || fail "two primaries? $out"
t0=$SECONDS
kill -TERM "$a"
wait "$a" || fail "host-a exited $? on SIGTERM: $(cat "$T/a.out")"
for _ in $(seq 50); do
	out=$(lc leader app/primary 2>/dev/null) && [[ $out == *host-b* ]] && break
	sleep 0.1
done
[[ $out == *value=host-b:8080* ]] || fail "after host-a: $out"
((SECONDS - t0 <= 3)) || fail "host-b took over after $((SECONDS - t0)) s: not a resign"
kill -TERM "$b"
wait "$b" || fail "host-b exited $? on SIGTERM: $(cat "$T/b.out")"

say "fenced_store --check: the stale holder's late write is refused"
"$FENCED" "$CLIENTS" store/x --check >"$T/fenced.out" 2>&1 ||
	fail "fenced_store exited $?: $(cat "$T/fenced.out")"
cat "$T/fenced.out"

stop_all TERM
[[ $STOP_RC -eq 0 ]] || fail "a replica exited $STOP_RC after SIGTERM"
say "ok"
