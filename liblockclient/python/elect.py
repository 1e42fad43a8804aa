#!/usr/bin/env python3
"""Elect a primary over lockd's HTTP API (standard library only).

    elect.py --http URL[,URL...] NAME VALUE [--ttl-ms N] [--lead-for S]

Campaigns for NAME with VALUE (this candidate's address, say) and prints
every leader it sees, one line each:

    leader app/primary value=node-a token=7 position=41
    elected app/primary value=node-b token=9 position=57

A leader keeps its lease renewed in the background; with --lead-for it
resigns (releases) after that many seconds, so the next candidate takes
over; without, it leads until killed (its lease then expires). Run two or
three of these against one cell and stop the leader to watch a handover.
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lockd_http  # noqa: E402


_out = threading.Lock()


def say(line):
    # One whole line at a time: the observer thread prints too.
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--http", default=os.environ.get("LOCKD_HTTP", ""),
                    help="the replicas' HTTP URLs, comma-separated "
                    "(default $LOCKD_HTTP)")
    ap.add_argument("--ttl-ms", type=int, default=5000)
    ap.add_argument("--lead-for", type=float, default=None,
                    help="resign after leading this many seconds")
    ap.add_argument("name")
    ap.add_argument("value")
    a = ap.parse_args()
    if not a.http:
        ap.error("--http URL[,URL...] (or LOCKD_HTTP) names the cell")
    c = lockd_http.Client(a.http)

    def observe():
        # Every leader change, from the position of a first read.
        last = None
        cur = c.get(a.name)
        if cur is not None:
            last = cur["token"]
            say(f"leader {a.name} value={cur['value']} token={cur['token']}"
                f" position={c.position}")
        for pos, lease in c.watch(a.name, from_position=c.position):
            if lease is not None and lease["token"] != last:
                last = lease["token"]
                say(f"leader {a.name} value={lease['value']} "
                    f"token={lease['token']} position={pos}")

    threading.Thread(target=observe, daemon=True).start()
    lost = threading.Event()
    s = c.session(on_lost=lambda lease: lost.set())
    lease = s.campaign(a.name, a.value, ttl_ms=a.ttl_ms)
    say(f"elected {a.name} value={a.value} token={lease.token} "
        f"position={c.position}")
    if a.lead_for is None:
        while not lost.wait(1.0):
            pass
        say(f"lost {a.name} token={lease.token}")
        return 1
    if lost.wait(a.lead_for):
        say(f"lost {a.name} token={lease.token}")
        return 1
    s.close()
    say(f"resigned {a.name} token={lease.token}")
    time.sleep(0.5)  # let the observer print the next leader
    return 0


if __name__ == "__main__":
    sys.exit(main())
