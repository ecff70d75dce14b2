#!/usr/bin/env python3
"""A real browser's load of a dashboard page, read from the page's own Navigation Timing.

Headless Chromium driven over W3C WebDriver (Debian's `chromedriver`), spoken to with the
standard library only. Each visit is a fresh navigation; for each, the page's navigation entry
gives `loadEventEnd` (milliseconds from the navigation's start to the end of its load event:
the server's answer, the transfer, parsing, styles, images and scripts), and the time at which
the parts the page fetches after it is shown (`#importance`, when the page defers it) are in.
Chromium's own start is not in either figure.

Usage: bench/browser_load.py URL [--visits 5] [--chromium /usr/bin/chromium]
       [--chromedriver /usr/bin/chromedriver]
Prints one JSON object: every visit's figures and their medians.
"""

import argparse
import json
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request

# Resolves with the page clock's time at which #importance holds its content (at once when the
# page does not defer it, or has filled it already).
WAIT_FOR_DEFERRED = """
var done = arguments[arguments.length - 1];
function filled() {
  var box = document.getElementById("importance");
  return !box || !box.dataset.src;
}
if (filled()) { done(performance.now()); return; }
new MutationObserver(function (_, observer) {
  if (filled()) { observer.disconnect(); done(performance.now()); }
}).observe(document.body, { subtree: true, childList: true, attributes: true });
"""


class Driver:
    def __init__(self, chromedriver, chromium):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.process = subprocess.Popen([chromedriver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.base + "/status", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit(f"chromedriver did not answer on port {port} within 30 s")
                time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
        session = self.command("POST", "/session", {
            "capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": chromium, "args": args},
                                             "timeouts": {"script": 120000, "pageLoad": 120000}}}})
        self.base += "/session/" + session["sessionId"]

    def command(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=180) as reply:
                return json.load(reply)["value"]
        except urllib.error.HTTPError as e:
            raise SystemExit(f"WebDriver {method} {path}: {e.code} {e.read().decode(errors='replace')}")

    def close(self):
        try:
            self.command("DELETE", "")
        finally:
            self.process.terminate()
            self.process.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--visits", type=int, default=5)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    a = parser.parse_args()
    driver = Driver(a.chromedriver, a.chromium)
    visits = []
    try:
        for _ in range(a.visits):
            driver.command("POST", "/url", {"url": "about:blank"})
            driver.command("POST", "/url", {"url": a.url})
            deferred = driver.command("POST", "/execute/async", {"script": WAIT_FOR_DEFERRED, "args": []})
            entry = driver.command("POST", "/execute/sync", {
                "script": "var e = performance.getEntriesByType('navigation')[0]; "
                          "return {response: e.responseEnd, dom: e.domContentLoadedEventEnd, load: e.loadEventEnd, bytes: e.transferSize};",
                "args": []})
            visits.append({"response_ms": entry["response"], "dom_ms": entry["dom"], "load_ms": entry["load"],
                           "deferred_ms": deferred, "bytes": entry["bytes"]})
    finally:
        driver.close()
    medians = {k: statistics.median(v[k] for v in visits) for k in ("response_ms", "dom_ms", "load_ms", "deferred_ms")}
    print(json.dumps({"url": a.url, "visits": visits, "median": medians}))


if __name__ == "__main__":
    main()
