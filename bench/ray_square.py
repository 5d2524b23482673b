#!/usr/bin/env python3
"""Ray driver for bench/peers.sh: square integers the way raygent runs a job.

The items 0..N are cut into chunks of CHUNK items; each chunk is one Ray
remote task (one CPU) that squares its items; at most IN_FLIGHT tasks run
at once (the driver waits for one to finish before it submits the next),
and finished chunks are put back in input order, as raygent's TaskManager
does with `with_at_once(true)` on WORKERS cores. Every run's results are
checked. `ray.init` is timed apart and not counted.

    python3 bench/ray_square.py --case 100000:100 --case 20000:1 --runs 3 \
        [--workers 2] [--in-flight 2] [--json out.json]

Prints one line per case (median seconds, µs per item) and, with --json,
writes {"ray": version, "python": version, "init_s": s, "rows": [{"n",
"chunk_size", "runs_s", "median_s"}]}.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def square_chunk(chunk):
    """The task: one chunk in, its squares out, in order."""
    return [x * x for x in chunk]


def run_job(ray, task, items, chunk_size, in_flight):
    """Runs one job; returns every result, in input order."""
    running = {}  # ObjectRef -> chunk index
    finished = {}  # chunk index -> results, waiting for the chunks before
    results = []
    next_index = 0

    def wait_for_one():
        nonlocal next_index
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            finished[running.pop(ref)] = ray.get(ref)
        while next_index in finished:
            results.extend(finished.pop(next_index))
            next_index += 1

    for index, start in enumerate(range(0, len(items), chunk_size)):
        if len(running) >= in_flight:
            wait_for_one()
        running[task.remote(items[start : start + chunk_size])] = index
    while running:
        wait_for_one()
    return results


def parse_case(text):
    n, _, chunk = text.partition(":")
    try:
        n, chunk = int(n), int(chunk)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N:CHUNK, like 100000:100, got {text!r}")
    if n < 1 or chunk < 1:
        raise argparse.ArgumentTypeError(f"N and CHUNK must be at least 1, got {text!r}")
    return n, chunk


def main():
    ap = argparse.ArgumentParser(description="Ray driver for bench/peers.sh")
    ap.add_argument("--case", type=parse_case, action="append", required=True,
                    metavar="N:CHUNK", help="N items in chunks of CHUNK (repeatable)")
    ap.add_argument("--runs", type=int, default=3, help="runs per case; the median is reported")
    ap.add_argument("--workers", type=int, default=2, help="CPUs given to Ray")
    ap.add_argument("--in-flight", type=int, default=2, help="remote tasks running at once")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="raygent-bench-ray-"))
    init_s = time.perf_counter() - started
    task = ray.remote(num_cpus=1)(square_chunk)
    rows = []
    try:
        for n, chunk in args.case:
            items = list(range(n))
            expected = [x * x for x in items]
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                got = run_job(ray, task, items, chunk, args.in_flight)
                times.append(time.perf_counter() - t0)
                if got != expected:
                    sys.exit(f"Ray gave wrong results for N={n}, chunk {chunk}")
            median = statistics.median(times)
            rows.append({"n": n, "chunk_size": chunk, "runs_s": times, "median_s": median})
            print(f"ray {ray.__version__}: {n} items, chunk {chunk}: median {median:.4f} s, "
                  f"{median / n * 1e6:.2f} µs/item (runs: {', '.join(f'{t:.4f}' for t in times)})")
    finally:
        ray.shutdown()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ray": ray.__version__, "python": sys.version.split()[0],
                       "init_s": init_s, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
