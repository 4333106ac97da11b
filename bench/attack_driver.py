"""The attacks of issue 21 replayed at their original scale against a running `kindred serve`
on loopback, one after the other, with the server's RSS sampled 5 times a second and
/health/live timed during each. Standard library only. Writes a JSON report: per attack the
answers by status, RSS before / peak / after, and the slowest /health/live answer."""

import argparse
import http.client
import json
import random
import resource
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from server_probe import rss_mb


class Watch:
    """Samples RSS and times /health/live in the background while an attack runs."""

    def __init__(self, addr, pid):
        self.addr, self.pid = addr, pid
        self.peak, self.live_max_ms, self.live_failures = 0.0, 0.0, 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.rss), threading.Thread(target=self.live)]

    def rss(self):
        while not self.stop.wait(0.2):
            self.peak = max(self.peak, rss_mb(self.pid))

    def live(self):
        host, port = self.addr.split(":")
        while not self.stop.wait(0.25):
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                conn.request("GET", "/health/live")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            self.live_failures += not ok
            self.live_max_ms = max(self.live_max_ms, (time.perf_counter() - started) * 1000)

    def __enter__(self):
        self.before = rss_mb(self.pid)
        self.peak = self.before
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()
        self.after = rss_mb(self.pid)


def request(addr, method, path, body=None, headers=None):
    host, port = addr.split(":")
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        return response.status, payload
    except (OSError, http.client.HTTPException):
        return 0, b""


def run_many(addr, calls, workers=8):
    statuses = {}
    lock = threading.Lock()

    def one(call):
        status, _ = request(addr, *call)
        with lock:
            statuses[str(status)] = statuses.get(str(status), 0) + 1

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, calls))
    return statuses


def attacks(addr, scale):
    rng = random.Random(21)
    json_headers = {"Content-Type": "application/json"}
    n = lambda full: max(1, int(full * scale))
    yield "invented methods (100 KB each)", lambda: run_many(
        addr, ((f"M{i}" + "X" * 100_000, "/v1/popular") for i in range(n(3_000))), 4)
    yield "lists for made-up users (n=1000)", lambda: run_many(
        addr, (("GET", f"/v1/recommend/made-up-{i}?n=1000") for i in range(n(50_000))))
    yield "one-off exclusions (n=1000)", lambda: run_many(
        addr, (("GET", f"/v1/recommend/{1 + i % 6040}?n=1000&exclude=x{i}") for i in range(n(20_000))))
    yield "20,000 feature columns in one item", lambda: run_many(
        addr, [("PUT", "/v1/items/wide", json.dumps(
            {"features": {f"f{i}": 1 for i in range(20_000)}}), json_headers)], 1)
    yield "new feature names, 250 per item", lambda: run_many(
        addr, (("PUT", f"/v1/items/names-{j}", json.dumps(
            {"features": {f"n{j}_{i}": 1 for i in range(250)}}), json_headers) for j in range(n(100))), 2)
    yield "feedback from 200,000 new users", lambda: run_many(
        addr, (("POST", "/v1/feedback", json.dumps([
            {"user": f"drive-by-{b}-{i}", "item": str(1 + i % 3952), "type": "click"}
            for i in range(5_000)]), json_headers) for b in range(n(40))), 2)
    yield "six 15 MB bodies at once", lambda: run_many(
        addr, (("POST", "/v1/feedback", json.dumps([
            {"user": "u", "item": "i", "type": "click", "event_id": f"big-{k}-{i}"}
            for i in range(200_000)]), json_headers) for k in range(6)), 6)

    def settle():
        # The writes above scheduled a catalog rebuild (200,000 new users join the catalog): let
        # it happen here, so its memory is not put down to the attacks after it.
        time.sleep(20)
        return "waited 20 s"

    yield "(the catalog rebuild the writes scheduled)", settle
    yield "wrong dashboard logins", lambda: run_many(
        addr, (("POST", "/dashboard/login", f"key=guess-{i}",
                {"Content-Type": "application/x-www-form-urlencoded"}) for i in range(n(1_000))), 4)

    def half_open():
        host, port = addr.split(":")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        socks, refused = [], 0
        for i in range(min(n(5_000), hard - 100)):
            try:
                s = socket.create_connection((host, int(port)), timeout=5)
                s.sendall(b"GET /v1/popular HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)
            except OSError:
                refused += 1
        time.sleep(12)  # past the header-read timeout
        closed = 0
        for s in socks:
            s.settimeout(0.5)
            try:
                closed += s.recv(1) == b""
            except OSError:
                pass
            s.close()
        return {"opened": len(socks), "refused": refused, "closed_by_server": closed}

    yield "5,000 half-open connections", half_open


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    report = []
    timeline, done = [], threading.Event()
    start = time.time()

    def sample():
        while not done.wait(1.0):
            timeline.append((round(time.time() - start, 1), round(rss_mb(args.pid), 1)))

    sampler = threading.Thread(target=sample)
    sampler.start()
    for name, attack in attacks(args.addr, args.scale):
        started = time.time()
        with Watch(args.addr, args.pid) as watch:
            result = attack()
        report.append({"attack": name, "result": result, "seconds": round(time.time() - started, 1),
                       "started_s": round(started - start, 1),
                       "rss_mb_before": round(watch.before, 1), "rss_mb_peak": round(watch.peak, 1),
                       "rss_mb_after": round(watch.after, 1),
                       "health_live_max_ms": round(watch.live_max_ms, 1),
                       "health_live_failures": watch.live_failures})
        print(json.dumps(report[-1]), flush=True)
    done.set()
    sampler.join()
    _, metrics = request(args.addr, "GET", "/metrics")
    report.append({"metrics_bytes": len(metrics), "rss_timeline": timeline})
    with open(args.out, "w") as out:
        json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
