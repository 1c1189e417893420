#!/usr/bin/env python3
"""Compares two runs of one manifest's report (results CSV of the report stage): the CPU run and the CUDA run.

The two devices round differently (cuBLAS vs OpenBLAS, reduction trees), and thousands of training steps
amplify last-bit differences into different weights, so item-level answers cannot match; what must match is
the outcome within sampling noise. Each row is an accuracy over ~50 items (binomial sd about 0.065), so the
check is on averages: the mean absolute row difference at most 0.10 and the overall means within 0.05. The
kernel-level agreement (1e-5) is tests/unit/test_engine_cuda.c's job."""
import csv
import sys


def rows(path):
    with open(path, newline="") as f:
        out = {}
        for r in csv.DictReader(f):
            key = (r["knowledge"], r["method"], r["setting"], r["round"], r["target"], r["scoring"], r["set"])
            out[key] = float(r["accuracy"])  # the scoring the evaluations used
        return out


def main():
    a, b = rows(sys.argv[1]), rows(sys.argv[2])
    if a.keys() != b.keys():
        print("compare: the reports have different rows")
        return 1
    diffs = [abs(a[k] - b[k]) for k in a]
    mean_abs = sum(diffs) / len(diffs)
    mean_a, mean_b = sum(a.values()) / len(a), sum(b.values()) / len(b)
    worst = max(a, key=lambda k: abs(a[k] - b[k]))
    print(f"compare: {len(a)} rows, mean |cpu - cuda| {mean_abs:.3f}, max {max(diffs):.3f} at {'/'.join(worst)};"
          f" mean accuracy cpu {mean_a:.3f}, cuda {mean_b:.3f}")
    return 0 if mean_abs <= 0.10 and abs(mean_a - mean_b) <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
