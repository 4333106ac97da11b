#!/usr/bin/env python3
"""Checks the scaling model of distributed ALS (ARCHITECTURE.md, "Scale-out") against the
measurements of bench/cluster_scaling.sh.

Model, per iteration, with W workers on C cores, f factors:
  bytes(W) = v f * sum over items i of (W - 1) * (1 - (1 - 1/W)^d_i)      (item factors to users' owners)
           + v f * sum over users u of (W - 1) * (1 - (1 - 1/W)^d_u)      (user factors to items' owners)
           + 2 * W * (W - 1) * 8 f^2                                      (partial Gram matrices)
  where v = 4 bytes per value (f32 for the conjugate-gradient solver; 8 for solver=cholesky) and
  d_i is the number of distinct users of item i (from the job's degree histograms): a
  worker needs item i's factors when at least one of its users touched i.
  seconds(W) = T1 / min(W, C) + c_mode * bytes(W) / min(W, C)
  T1 = the one-worker time (all compute, no exchange); c_mode = CPU seconds per exchanged byte
  (encode, copy, decode; for processes also serialise and the TCP stack), calibrated on the
  2-worker run of each mode and *predicting* the 4-worker runs.
Iteration 1 is left out of the means (warm-up)."""
import json
import os
import sys


def load(out, name):
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def mean_of(summary, key):
    its = summary["iterations"][1:] or summary["iterations"]
    return sum(it[key] for it in its) / len(its)


def predicted_bytes(summary, workers):
    w, f = workers, summary["factors"]
    v = 8 if summary["params"].get("solver") == "cholesky" else 4
    if w == 1:
        return 0.0
    def side(hist):
        return sum(count * (w - 1) * (1 - (1 - 1 / w) ** degree) for degree, count in hist)
    return v * f * (side(summary["item_degrees"]) + side(summary["user_degrees"])) + 2 * w * (w - 1) * 8 * f * f


def main():
    out, cores = sys.argv[1], int(sys.argv[2])
    base = load(out, "threads-1")
    if base is None:
        sys.exit("threads-1.json is missing: run bench/cluster_scaling.sh")
    t1 = mean_of(base, "seconds")
    rows = []
    calibration = {}
    for mode in ("threads", "processes"):
        two = load(out, f"{mode}-2")
        if two is not None:
            b2 = predicted_bytes(two, 2)
            calibration[mode] = (mean_of(two, "seconds") - t1 / min(2, cores)) * min(2, cores) / b2
    for mode in ("threads", "processes"):
        for w in (1, 2, 4):
            s = base if w == 1 else load(out, f"{mode}-{w}")
            if s is None or (w == 1 and mode == "processes"):
                continue
            measured_s, measured_b = mean_of(s, "seconds"), mean_of(s, "bytes_to_workers")
            pb = predicted_bytes(s, w)
            c = calibration.get(mode, 0.0) if w > 1 else 0.0
            ps = t1 / min(w, cores) + c * pb / min(w, cores)
            role = "baseline" if w == 1 else ("calibrates c" if w == 2 else "predicted")
            rows.append((mode, w, measured_s, ps, measured_b, pb, role))
    print(f"# Distributed ALS scaling: {base['rows']:,} events, {base['pairs']:,} pairs, "
          f"{base['users']:,} users x {base['items']:,} items, {base['factors']} factors, {cores} cores\n")
    for mode, c in calibration.items():
        print(f"- c_{mode} = {c * 1e9:.3f} ns per exchanged byte (from the 2-worker run)")
    print(f"- T1 = {t1:.3f} s per iteration (1 worker)\n")
    print("| mode | workers | s/iteration measured | predicted | error | bytes/iteration measured | predicted | error | role |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for mode, w, ms, ps, mb, pb, role in rows:
        es = (ps - ms) / ms
        eb = (pb - mb) / mb if mb else 0.0
        if role == "predicted":
            worst = max(worst, abs(es), abs(eb))
        elif w > 1:
            worst = max(worst, abs(eb))
        print(f"| {mode} | {w} | {ms:.3f} | {ps:.3f} | {es:+.1%} | {mb:,.0f} | {pb:,.0f} | {eb:+.2%} | {role} |")
    print(f"\nLargest error of a prediction: {worst:.1%} ({'within' if worst <= 0.30 else 'OUTSIDE'} 30%)")


if __name__ == "__main__":
    main()
