#!/usr/bin/env bash
# lockctl running a command under a lease (issue 16): nothing of the command
# runs once the lease is gone. Its process group, a grandchild, one that
# left the group (setsid) and a child that ignores SIGTERM are all gone when
# lockctl exits after losing the lease (revoke) or after a signal (HUP, USR1,
# PIPE: exit 128+N, the lease released at once); kill -9 of lockctl takes
# the command's group with it (the lease then expires); a command's
# leftovers do not outlive it; --hold; elect --wait.
. "$(dirname "$0")/lib.sh"
LOCKCTL=$(realpath "$3")
EXTRA=(--grace-ms 500)

lc() { "$LOCKCTL" -e "$CLIENTS" "$@"; }
expect_rc() { # rc cmd...: runs cmd, asserts its exit status
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[[ $rc -eq $want ]] || fail "$* exited $rc, want $want: $(cat "$T/out" "$T/err")"
}

# gone PID: the process has ended (a zombie has: nobody may reap orphans
# in a container whose init does not).
gone() {
	local st
	st=$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 0
	[[ -z $st || $st == Z || $st == X ]]
}
pids_of() { # dir: the pids the command wrote there
	cat "$1"/*.pid
}
all_gone() { # dir
	local p
	for p in $(pids_of "$1"); do gone "$p" || return 1; done
}
wait_all_gone() { # dir secs
	local deadline=$((SECONDS + $2))
	while ((SECONDS < deadline)); do
		all_gone "$1" && return 0
		sleep 0.1
	done
	all_gone "$1" || fail "still running: $(for p in $(pids_of "$1"); do gone "$p" || ps -o pid=,stat=,args= -p "$p"; done)"
}
wait_files() { # dir n: until the command wrote n pid files
	local i
	for i in $(seq 150); do
		[[ $(find "$1" -name '*.pid' -size +0 | wc -l) -ge $2 ]] && return 0
		sleep 0.1
	done
	fail "the command did not start: $(ls "$1")"
}
# Kills what a failed test left running (the command's processes are not
# lib.sh's replicas).
kill_left() {
	local rc=$? d
	for d in "$T"/run-*; do
		[[ -d $d ]] && kill -KILL $(pids_of "$d") 2>/dev/null || true
	done
	(exit $rc)
	cleanup
}
trap kill_left EXIT

# The command: a grandchild, one that leaves the group, and (with TRAP=1)
# SIGTERM ignored by all of them; then it waits.
CMD='[[ $1 == 1 ]] && trap "" TERM
sleep 300 & echo $! >"$0/grandchild.pid"
setsid sleep 300 & echo $! >"$0/escaped.pid"
echo $$ >"$0/child.pid"
while :; do sleep 0.1; done'

say "start 3 replicas"
start_all
wait_leader >/dev/null

say "revoke: the command, its grandchildren and a SIGTERM-proof child are gone, exit 5"
d=$T/run-lost
mkdir "$d"
"$LOCKCTL" -e "$CLIENTS" acquire run/lost --ttl 6s --kill-after 1s -- \
	bash -c "$CMD" "$d" 1 >"$d.out" 2>"$d.err" &
lp=$!
wait_files "$d" 3
expect_rc 0 lc revoke run/lost --reason "issue 16 test"
grep -q "reason: issue 16 test" "$T/out" || fail "revoke said: $(cat "$T/out")"
t0=$SECONDS
rc=0
wait "$lp" || rc=$?
[[ $rc -eq 5 ]] || fail "lockctl exited $rc, want 5: $(cat "$d.err")"
all_gone "$d" || fail "left running after the loss: $(pids_of "$d")"
((SECONDS - t0 <= 20)) || fail "lockctl took $((SECONDS - t0)) s to stop the command"
grep -q "lost the lease on run/lost" "$d.err" || fail "no loss message: $(cat "$d.err")"
grep -q "SIGKILL" "$d.err" || fail "the SIGTERM-proof child was not killed: $(cat "$d.err")"
grep -q "revoked by an operator (reason: issue 16 test)" "$d.err" ||
	fail "the loss does not say revoked, and why: $(cat "$d.err")"
# The replicas log the revoke with its reason.
for _ in $(seq 50); do grep -q 'event=revoke name=run/lost reason="issue 16 test"' "$T"/r*.log && break; sleep 0.1; done
grep -q 'event=revoke name=run/lost reason="issue 16 test"' "$T"/r*.log || fail "no revoke log line"

for sig in HUP USR1 PIPE; do
	say "SIG$sig to lockctl: the command is stopped, the lease released at once"
	d=$T/run-$sig
	mkdir "$d"
	"$LOCKCTL" -e "$CLIENTS" acquire "run/$sig" --ttl 30s --kill-after 1s -- \
		bash -c "$CMD" "$d" 0 >"$d.out" 2>"$d.err" &
	lp=$!
	wait_files "$d" 3
	kill -"$sig" "$lp"
	rc=0
	wait "$lp" || rc=$?
	want=$((128 + $(kill -l "$sig")))
	[[ $rc -eq $want ]] || fail "lockctl exited $rc after SIG$sig, want $want: $(cat "$d.err")"
	all_gone "$d" || fail "left running after SIG$sig: $(pids_of "$d")"
	# Released, not left to expire (30 s): free right away.
	expect_rc 3 lc get "run/$sig"
done

say "kill -9 of lockctl: the command's group dies with it; the lease expires"
d=$T/run-k9
mkdir "$d"
"$LOCKCTL" -e "$CLIENTS" acquire run/k9 --ttl 30s -- \
	bash -c 'sleep 300 & echo $! >"$0/grandchild.pid"; echo $$ >"$0/child.pid"; wait' "$d" \
	>"$d.out" 2>"$d.err" &
lp=$!
wait_files "$d" 2
kill -KILL "$lp"
wait "$lp" || true
wait_all_gone "$d" 10
expect_rc 0 lc get run/k9 # held until it expires: nobody released it

say "a command's leftovers do not outlive it; its exit status is lockctl's"
d=$T/run-left
mkdir "$d"
expect_rc 7 lc acquire run/left --ttl 30s --kill-after 1s -- \
	bash -c 'sleep 300 & echo $! >"$0/grandchild.pid"; exit 7' "$d"
all_gone "$d" || fail "the command's background child outlived it"
expect_rc 3 lc get run/left

say "acquire --hold: renewed past its TTL until SIGTERM, then released"
"$LOCKCTL" -e "$CLIENTS" acquire run/hold --ttl 2s --hold >"$T/hold.out" 2>"$T/hold.err" &
hp=$!
for _ in $(seq 100); do grep -q token= "$T/hold.out" && break; sleep 0.1; done
tok=$(kv "$(cat "$T/hold.out")" token)
[[ -n $tok ]] || fail "--hold printed no token: $(cat "$T/hold.out" "$T/hold.err")"
sleep 3 # past the TTL: renewals keep it
expect_rc 0 lc check-token run/hold "$tok"
kill -TERM "$hp"
rc=0
wait "$hp" || rc=$?
[[ $rc -eq 0 ]] || fail "--hold exited $rc after SIGTERM: $(cat "$T/hold.err")"
expect_rc 3 lc get run/hold
expect_rc 2 lc acquire run/hold --hold -- true

say "elect --wait: give up when not elected in time"
"$LOCKCTL" -e "$CLIENTS" elect run/grp --value one --ttl 5s >"$T/e1.out" 2>"$T/e1.err" &
ep=$!
for _ in $(seq 100); do grep -q elected "$T/e1.out" && break; sleep 0.1; done
grep -q elected "$T/e1.out" || fail "not elected: $(cat "$T/e1.err")"
expect_rc 1 lc elect run/grp --value two --wait 1s
grep -q "not elected within --wait" "$T/err" || fail "elect --wait: $(cat "$T/err")"
kill -INT "$ep"
rc=0
wait "$ep" || rc=$?
[[ $rc -eq 0 ]] || fail "elect exited $rc after SIGINT: $(cat "$T/e1.err")"
expect_rc 3 lc leader run/grp
say "ok"
