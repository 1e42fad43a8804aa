#!/usr/bin/env bash
# The Python client (liblockclient/python, standard library only) on a real
# cell, through the HTTP API: a session's keepalive holds a 1 s lease for
# 3 s, a second session is refused, a watch sees the release, and two
# elect.py candidates hand the primary over when the first resigns.
# $3 is liblockclient/python.
. "$(dirname "$0")/lib.sh"
PY=$(realpath "$3")
command -v python3 >/dev/null || fail "python3 is needed"

start_http_cell
lead=$(wait_leader)
# The client is given the replicas follower first: it finds the leader.
export LOCKD_HTTP="${HTTP_URLS[$(((lead + 1) % 3))]},${HTTP_URLS[$lead]}"

say "sessions, keepalive, conflict, watch, list (lockd_http.py)"
PYTHONPATH=$PY timeout 60 python3 - <<'PYEOF' || fail "the Python client test failed"
import os, threading, time
import lockd_http

c = lockd_http.Client(os.environ["LOCKD_HTTP"])
lost = []
a = c.session(on_lost=lost.append)
b = c.session()
lease = a.acquire("py/lock", ttl_ms=1000, value="a")
assert lease is not None, "no grant"
print("granted", lease, "position", c.position)
time.sleep(3)  # three TTLs: only the keepalive keeps it
cur = c.get("py/lock")
assert cur and int(cur["token"]) == lease.token and int(cur["holder"]) == a.id, cur
assert not lost, lost
print("held after 3 s by the keepalive:", cur["token"], cur["value"])
assert b.acquire("py/lock", ttl_ms=1000) is None, "a second session got it"
t0 = time.monotonic()
assert b.acquire("py/lock", ttl_ms=1000, wait_ms=500) is None
assert time.monotonic() - t0 >= 0.4, "the wait did not wait"
print("second session refused, with and without a wait")

seen = []
def watch():
    for pos, l in c.watch("py/lock", from_position=c.position, wait_ms=5000):
        seen.append((pos, l))
        return
w = threading.Thread(target=watch, daemon=True)
w.start()
time.sleep(0.5)
assert a.release(lease)
w.join(10)
assert seen and seen[0][1] is None, seen
print("watch saw the release at position", seen[0][0])
lb = b.acquire("py/lock", ttl_ms=2000, value="b")
assert lb is not None and lb.token > lease.token, lb
for n in ("py/x", "py/y"):
    assert a.acquire(n, ttl_ms=5000)
names = [l["name"] for l in c.list("py/")]
assert names == ["py/lock", "py/x", "py/y"], names
print("list:", names)
a.close()
b.close()
assert c.get("py/x") is None and c.get("py/lock") is None
print("closed sessions released their leases")
PYEOF

say "election: two elect.py candidates, the first resigns after 3 s"
python3 "$PY/elect.py" --lead-for 3 app/primary node-a >"$T/a.out" 2>&1 &
apid=$!
for _ in $(seq 100); do grep -q '^elected' "$T/a.out" && break; sleep 0.1; done
grep -q '^elected app/primary value=node-a' "$T/a.out" || fail "a: $(cat "$T/a.out")"
python3 "$PY/elect.py" app/primary node-b >"$T/b.out" 2>&1 &
bpid=$!
# a leads 3 s; under load (ASan, elections) b may wait a while longer
for _ in $(seq 400); do grep -q '^elected' "$T/b.out" && break; sleep 0.1; done
wait $apid || fail "a exited with $?: $(cat "$T/a.out")"
kill $bpid 2>/dev/null || true
wait $bpid 2>/dev/null || true
echo "  a: $(tr '\n' '|' <"$T/a.out")"
echo "  b: $(tr '\n' '|' <"$T/b.out")"
grep -q '^resigned app/primary' "$T/a.out" || fail "a did not resign"
grep -q '^leader app/primary value=node-a' "$T/b.out" || fail "b never saw a lead"
grep -q '^elected app/primary value=node-b' "$T/b.out" || fail "b was not elected"
line=$(probe "$CLIENTS" get app/primary) || fail "$line"
[[ $(kv "$line" found) == 1 ]] || fail "nobody holds app/primary: $line"

stop_all
[[ $STOP_RC -eq 0 ]] || fail "a replica exited with $STOP_RC"
say "ok"
