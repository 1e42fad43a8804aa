#!/usr/bin/env python3
"""Loads lockd's status page in headless Chromium through chromedriver
(WebDriver over urllib: no Selenium, no npm) and prints what it shows.

    browser.py CHROMEDRIVER URL SCREENSHOT.png [--after CMD]

Waits for body[data-ready], prints one JSON line {"replicas": [...],
"leases": [...], "summary": ...} with the tables' cells; with --after, runs
CMD (a shell command that changes a lease), waits until the page's
"Changes" list shows a new entry, and prints it as {"change": ...}; then
saves a screenshot. Exit 1 with a sentence on any failure.
"""

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wd(base, method, path, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)["value"]
    except urllib.error.HTTPError as e:
        raise SystemExit(f"browser.py: WebDriver {method} {path}: "
                         f"{e.code} {e.read()[:300]!r}")


def main():
    args = sys.argv[1:]
    after = None
    if "--after" in args:
        i = args.index("--after")
        after = args[i + 1]
        del args[i:i + 2]
    driver, url, shot = args
    port = free_port()
    proc = subprocess.Popen([driver, f"--port={port}"],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/status", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }}}}
        sid = wd(base, "POST", "/session", caps, timeout=60)["sessionId"]
        s = f"/session/{sid}"
        try:
            wd(base, "POST", s + "/url", {"url": url})

            def js(code):
                return wd(base, "POST", s + "/execute/sync",
                          {"script": code, "args": []})

            deadline = time.time() + 20
            while js("return document.body.dataset.ready || ''") != "1":
                if time.time() > deadline:
                    raise SystemExit("browser.py: the page never became "
                                     "ready: " + js("return document.body.innerText"))
                time.sleep(0.2)
            time.sleep(0.5)  # the replicas' rows (fetched side by side)
            cells = """
              const t = (id) => [...document.querySelectorAll('#' + id + ' tbody tr')]
                .map((tr) => [...tr.cells].map((td) => td.textContent));
              return JSON.stringify({replicas: t('replicas'), leases: t('leases'),
                summary: document.getElementById('summary').textContent,
                count: document.getElementById('leasecount').textContent});
            """
            print(js(cells), flush=True)
            if after is not None:
                before = js("return document.getElementById('changes').children.length")
                subprocess.run(after, shell=True, check=True,
                               stdout=subprocess.DEVNULL)
                deadline = time.time() + 15
                while js("return document.getElementById('changes').children.length") == before:
                    if time.time() > deadline:
                        raise SystemExit("browser.py: no live change shown")
                    time.sleep(0.2)
                time.sleep(0.5)  # the table listed again after it
                print(json.dumps({"change": js(
                    "return document.getElementById('changes').firstChild.textContent"),
                    "after": json.loads(js(cells))}), flush=True)
            png = wd(base, "GET", s + "/screenshot")
            with open(shot, "wb") as f:
                f.write(base64.b64decode(png))
        finally:
            wd(base, "DELETE", s)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
