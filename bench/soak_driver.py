"""The write side of bench/soak.sh: feedback batches with unique event ids, item upserts, a training
run now and then, and a sample of the server's RSS (total, anonymous, file-backed, huge pages)
every 10 s; with --no-writes only the training runs and the samples (a fresh server on the final
store, for comparison). Standard library only. Counts every answer by status; a 503 `overloaded`
is shed load, any other 5xx is a failure. Writes a JSON report."""

import argparse
import http.client
import json
import random
import threading
import time

from server_probe import huge_pages_mb, rss_mb, rss_parts_mb


class Client:
    def __init__(self, addr):
        self.host, self.port = addr.split(":")
        self.conn = None

    def call(self, method, path, body=None):
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, int(self.port), timeout=60)
                data = json.dumps(body).encode() if body is not None else None
                headers = {"Content-Type": "application/json"} if data is not None else {}
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                try:
                    doc = json.loads(payload) if payload else None
                except ValueError:
                    doc = None
                return response.status, doc
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 1:
                    return 0, None
        return 0, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--duration", type=float, default=1200)
    ap.add_argument("--train-every", type=float, default=300)
    ap.add_argument("--feedback-batch", type=int, default=20)
    ap.add_argument("--feedback-every", type=float, default=0.5)
    ap.add_argument("--item-every", type=float, default=30)
    ap.add_argument("--no-writes", action="store_true",
                    help="no feedback or item writes: training runs and samples only")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rng = random.Random(21)
    lock = threading.Lock()
    counts, shed, fivexx = {}, 0, 0
    feedback = {"batches": 0, "inserted": 0, "duplicates": 0}
    samples = []
    start = time.time()
    stop = threading.Event()

    def count(kind, status, doc):
        nonlocal shed, fivexx
        with lock:
            counts.setdefault(kind, {}).setdefault(str(status), 0)
            counts[kind][str(status)] += 1
            if status == 503 and doc and doc.get("error", {}).get("code") == "overloaded":
                shed += 1
            elif status >= 500 or status == 0:
                fivexx += 1

    def writer():
        client, n = Client(args.addr), 0
        while not stop.is_set():
            batch = []
            for _ in range(args.feedback_batch):
                n += 1
                batch.append({"user": str(rng.randint(1, 8000)), "item": str(rng.randint(1, 3952)),
                              "type": rng.choice(["click", "view", "purchase"]),
                              "event_id": f"soak-{n}"})
            status, doc = client.call("POST", "/v1/feedback", batch)
            count("feedback", status, doc)
            if status == 200:
                with lock:
                    feedback["batches"] += 1
                    feedback["inserted"] += doc["inserted"]
                    feedback["duplicates"] += doc["duplicates"]
            stop.wait(args.feedback_every)

    def items():
        client, n = Client(args.addr), 0
        while not stop.is_set():
            n += 1
            body = {"features": {"genre": rng.choice(["a", "b", "c"]), "price": rng.random() * 100},
                    "categories": [rng.choice(["x", "y", "z"])], "timestamp": int(time.time())}
            status, doc = client.call("PUT", f"/v1/items/soak-item-{n % 500}", body)
            count("items", status, doc)
            stop.wait(args.item_every)

    def trainer():
        client = Client(args.addr)
        while not stop.wait(args.train_every):
            status, doc = client.call("POST", "/v1/models", {"activate": False})
            count("train", status, doc)

    def sampler():
        client = Client(args.addr)
        while True:
            t = time.time() - start
            status, _ = client.call("GET", "/health/live")
            anon, file_backed = rss_parts_mb(args.pid)
            samples.append({"t": round(t, 1), "rss_mb": round(rss_mb(args.pid), 1),
                            "anon_mb": round(anon, 1), "file_mb": round(file_backed, 1),
                            "huge_mb": round(huge_pages_mb(args.pid), 1), "live": status})
            if stop.wait(10):
                break

    jobs = (trainer, sampler) if args.no_writes else (writer, items, trainer, sampler)
    threads = [threading.Thread(target=f) for f in jobs]
    for th in threads:
        th.start()
    time.sleep(args.duration)
    stop.set()
    for th in threads:
        th.join()
    report = {"duration_s": round(time.time() - start, 1), "counts": counts, "shed": shed,
              "fivexx_not_shed": fivexx, "feedback": feedback, "samples": samples}
    with open(args.out, "w") as out:
        json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
