"""A lockd client over the HTTP/JSON API (README, "HTTP API").

Only Python's standard library: urllib, json, threading. It does what
liblockclient does, in miniature:

- it knows every replica's --http URL and sends each request to the one
  that last led, following a follower's 307 to the leader, and trying the
  next replica when one does not answer or is busy;
- it keeps the highest ledger position it has seen and sends it with every
  read (X-Lockd-Position), so reads never go back in time;
- a Session renews its leases in a background thread (at a third of the
  TTL left) and reports a lease it lost;
- writes carry their own seq: a retry after a lost answer reuses it, so the
  cell applies the write once.

    c = lockd_http.Client(["http://127.0.0.1:7480", ...])
    with c.session() as s:
        lease = s.acquire("db/migration", ttl_ms=15000)
        if lease:
            ...  # pass lease.token to what the lease protects (fencing)
            s.release(lease)

64-bit ids, tokens and positions are ints here (JSON strings on the wire).
"""

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["Client", "Session", "Lease", "LockdError"]


class LockdError(Exception):
    """The cell (or the client) refused: .status, .code and the sentence."""

    def __init__(self, status, code, sentence, reply=None):
        super().__init__(f"{status} ({code}): {sentence}")
        self.status = status
        self.code = code
        self.sentence = sentence
        self.reply = reply or {}


class Lease:
    def __init__(self, name, token, ttl_ms, value):
        self.name = name
        self.token = token
        self.ttl_ms = ttl_ms
        self.value = value
        self.lost = False

    def __repr__(self):
        return f"Lease({self.name!r}, token={self.token}, ttl_ms={self.ttl_ms})"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A 307 is followed by the client itself (urllib would not resend a
    # POST's body), so that it also learns where the leader is.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Client:
    def __init__(self, urls, timeout_s=10.0, retry_s=15.0):
        if isinstance(urls, str):
            urls = [u for u in urls.split(",") if u]
        if not urls:
            raise ValueError("Client wants at least one replica's HTTP URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.position = 0
        self._first = 0  # the replica that last led
        self._mu = threading.Lock()
        self._opener = urllib.request.build_opener(_NoRedirect)

    # ---- transport -------------------------------------------------------

    def _once(self, url, method, body, headers, wait_ms):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        for k, v in headers.items():
            req.add_header(k, v)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(
                req, timeout=self.timeout_s + wait_ms / 1000.0
            ) as r:
                return r.status, json.load(r), r.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                reply = json.loads(raw)
            except ValueError:
                reply = {"status": "HTTP", "error": raw[:200].decode("utf-8", "replace")}
            return e.code, reply, e.headers

    def call(self, method, path, body=None, query=None, session=None,
             read=False, wait_ms=0):
        """One request, with failover; returns (http_code, reply).

        Raises LockdError when no replica gives an answer within retry_s,
        and returns every answer the cell gave (409, 400, ...)."""
        q = dict(query or {})
        headers = {}
        if read:
            headers["X-Lockd-Position"] = str(self.position)
        if session is not None:
            headers["X-Lockd-Session"] = session
        qs = ("?" + urllib.parse.urlencode(q)) if q else ""
        deadline = time.monotonic() + self.retry_s + wait_ms / 1000.0
        tries = 0
        last = "no replica answered"
        target = None
        while True:
            with self._mu:
                i = (self._first + tries) % len(self.urls)
            url = target or (self.urls[i] + path + qs)
            target = None
            try:
                code, reply, hdrs = self._once(url, method, body, headers, wait_ms)
            except (OSError, ValueError) as e:
                code, reply, hdrs = None, None, None
                last = f"{url}: {e}"
            if reply is not None:
                pos = int(reply.get("position") or 0)
                with self._mu:
                    self.position = max(self.position, pos)
                st = reply.get("status")
                if code == 307 and hdrs.get("Location"):
                    target = hdrs["Location"]
                    self._note_leader(target)
                    continue
                if st == "NOT_LEADER" and reply.get("leader_http"):
                    target = reply["leader_http"].rstrip("/") + path + qs
                    self._note_leader(target)
                    continue
                if st not in ("NOT_LEADER", "BUSY", "BEHIND"):
                    return code, reply
                last = reply.get("error", st)
            tries += 1
            if time.monotonic() >= deadline:
                raise LockdError("UNAVAILABLE", 503, last)
            if tries % len(self.urls) == 0:
                time.sleep(0.1)

    def _note_leader(self, url):
        for i, u in enumerate(self.urls):
            if url.startswith(u + "/"):
                with self._mu:
                    self._first = i
                return

    @staticmethod
    def _check(code, reply, ok=(200,)):
        if code not in ok:
            raise LockdError(reply.get("status"), code, reply.get("error", ""), reply)
        return reply

    # ---- reads -----------------------------------------------------------

    def status(self):
        return self._check(*self.call("GET", "/v1/status"))

    def get(self, name, consistency=None):
        """The lease (a dict in lockctl's JSON shape), or None when free."""
        q = {"consistency": consistency} if consistency else None
        path = "/v1/lease/" + urllib.parse.quote(name)
        return self._check(*self.call("GET", path, query=q, read=True))["lease"]

    def list(self, prefix=""):
        """Every lease under prefix, page after page."""
        out, after = [], None
        while True:
            q = {"prefix": prefix}
            if after is not None:
                q["after"] = after
            r = self._check(*self.call("GET", "/v1/leases", query=q, read=True))
            out += r["leases"]
            if not r["more"]:
                return out
            after = r["next_after"] or r["leases"][-1]["name"]

    def watch(self, name, from_position=None, wait_ms=30000):
        """Yields (position, lease or None) for each change of name after
        from_position (default: now), long-polling for ever."""
        if from_position is None:
            r = self._check(*self.call(
                "GET", "/v1/lease/" + urllib.parse.quote(name), read=True))
            from_position = int(r["position"])
        pos = from_position
        path = "/v1/watch/" + urllib.parse.quote(name)
        while True:
            r = self._check(*self.call(
                "GET", path, query={"from": pos, "wait_ms": wait_ms},
                read=True, wait_ms=wait_ms))
            pos = max(pos, int(r["position"]))
            if r["changed"]:
                yield pos, r["lease"]

    def revoke(self, name, reason=""):
        return self._check(*self.call(
            "POST", "/v1/revoke/" + urllib.parse.quote(name),
            body={"reason": reason}))

    def session(self, on_lost=None):
        """A new session (its credentials from any replica)."""
        r = self._check(*self.call("POST", "/v1/session"))
        return Session(self, r["credentials"], on_lost)


class Session:
    """A session: its leases, renewed by a keepalive thread."""

    def __init__(self, client, credentials, on_lost=None):
        self.c = client
        self.credentials = credentials
        self.id = int(credentials.split(":")[0])
        self.on_lost = on_lost
        self.leases = {}  # name -> Lease
        self._seq = time.time_ns() // 1000
        self._mu = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._keepalive, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _write(self, path, body):
        with self._mu:
            self._seq += 1
            body = dict(body, seq=str(self._seq))
        for _ in range(3):
            code, reply = self.c.call("POST", path, body=body,
                                      session=self.credentials,
                                      wait_ms=int(body.get("wait_ms", 0)))
            if reply.get("lease_status") != "SUPERSEDED":
                return code, reply
            with self._mu:  # a later command reached the cell first
                self._seq += 1
                body["seq"] = str(self._seq)
        return code, reply

    def acquire(self, name, ttl_ms, wait_ms=0, value=""):
        """The Lease, or None when another session holds it (after waiting
        up to wait_ms, at most 60 s a request: longer waits ask again)."""
        end = time.monotonic() + wait_ms / 1000.0
        while True:
            left = max(0, int((end - time.monotonic()) * 1000))
            w = min(left, 60000)
            code, r = self._write("/v1/acquire/" + urllib.parse.quote(name),
                                  {"ttl_ms": ttl_ms, "wait_ms": w,
                                   "value": value})
            if code == 200 and r["lease_status"] == "GRANTED":
                lease = Lease(name, int(r["token"]), ttl_ms, value)
                with self._mu:
                    self.leases[name] = lease
                    self._mu.notify_all()
                return lease
            if code == 409 and r["status"] in ("OK", "TIMEOUT"):
                if left > w:
                    continue
                return None
            Client._check(code, r)

    def release(self, lease):
        code, r = self._write("/v1/release/" + urllib.parse.quote(lease.name),
                              {"token": str(lease.token)})
        with self._mu:
            self.leases.pop(lease.name, None)
        return code == 200

    def proclaim(self, lease, value):
        Client._check(*self._write(
            "/v1/proclaim/" + urllib.parse.quote(lease.name),
            {"token": str(lease.token), "value": value}))
        lease.value = value

    def campaign(self, name, value, ttl_ms=10000):
        """Blocks until this session leads name (an election: the lease's
        value says who leads); returns its Lease."""
        while True:
            lease = self.acquire(name, ttl_ms, wait_ms=60000, value=value)
            if lease is not None:
                return lease

    def renew(self):
        code, r = self._write("/v1/renew", {})
        Client._check(code, r)
        return {int(t) for t in r["renewed"]}

    def _keepalive(self):
        while True:
            with self._mu:
                if self._closed:
                    return
                if not self.leases:
                    self._mu.wait()
                    continue
                ttl = min(x.ttl_ms for x in self.leases.values())
                self._mu.wait(ttl / 3000.0)
                if self._closed:
                    return
                held = list(self.leases.values())
            try:
                renewed = self.renew()
            except LockdError:
                continue  # the next try comes sooner than any deadline
            lost = [x for x in held if x.token not in renewed]
            with self._mu:
                for x in lost:
                    if self.leases.get(x.name) is x:
                        del self.leases[x.name]
                        x.lost = True
            for x in lost:
                if self.on_lost:
                    self.on_lost(x)

    def close(self):
        """Releases every lease and stops renewing."""
        with self._mu:
            self._closed = True
            self._mu.notify_all()
            held = list(self.leases.values())
        for x in held:
            try:
                self.release(x)
            except LockdError:
                pass  # it expires
        self._thread.join()
