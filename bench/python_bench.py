#!/usr/bin/env python3
"""The same Python task three ways, in one run: raygent's TaskManager
(worker processes), multiprocessing.Pool.imap with chunksize, and Ray as
the seed uses it (one remote task per chunk, max_concurrent_tasks in
flight, results flushed in input order).

Measured, on all cores (W = os.cpu_count() workers everywhere):

  overhead per chunk   squaring ints at chunk sizes 1 and 100:
                       (wall * W - sequential compute) / chunks, i.e. the
                       CPU time each chunk costs beyond the useful work
                       (as bench/peers.sh and the Ray peer driver define it)
  CPU-bound throughput items/s of a pure-Python task of ~1 ms per item,
                       chunks of 10; raygent also saves every result
                       (DatasetSaver, CBOR) with a checkpoint (exact resume)
                       and retries failed chunks, Pool.imap does neither
  time to first result from nothing running (no pool, no workers) to the
                       first result in the driver

raygent's walls include starting its worker processes (each
submit_tasks starts fresh ones); Pool's exclude creating the pool and
Ray's exclude ray.init, both reported separately. Every figure is the
median of --runs runs; every result is checked.

    pip install .  ray          # raygent from the repository root, and Ray
    python bench/python_bench.py [--runs 3] [--quick] [--no-ray] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

W = os.cpu_count() or 1


# --- the task ----------------------------------------------------------------

def square(x):
    return x * x


def burn(x, iters):
    acc = x
    for i in range(iters):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return x * x + (acc & 0)


BURN_ITERS = 0  # set by calibrate(); passed explicitly to every runner


def burn_default(x):
    return burn(x, BURN_ITERS)


def calibrate(target_s=1e-3):
    iters = 1000
    while True:
        t0 = time.perf_counter()
        for _ in range(20):
            burn(3, iters)
        dt = (time.perf_counter() - t0) / 20
        if dt > 2e-4:
            break
        iters *= 2
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(20):
            burn(3, iters)
        samples.append((time.perf_counter() - t0) / 20)
    return max(1, int(iters * target_s / statistics.median(samples)))


class SquareTask:
    """raygent- and Ray-shaped: a task class with process_item(s)."""

    def process_item(self, x):
        return x * x

    def process_items(self, chunk, **kwargs):
        return [x * x for x in chunk]


class BurnTask:
    def process_item(self, x, iters=0):
        return burn(x, iters)

    def process_items(self, chunk, iters=0, **kwargs):
        return [burn(x, iters) for x in chunk]


# --- runners -------------------------------------------------------------------

def run_seq(func, items):
    return [func(x) for x in items]


def run_pool(pool, func, items, chunk_size):
    return list(pool.imap(func, items, chunksize=chunk_size))


def run_raygent(task_class, items, chunk_size, kwargs_task=None, save_dir=None, first=None):
    from raygent import DatasetSaver, ResultHandler, TaskManager

    class Collect(ResultHandler):
        def __init__(self):
            self.results = []

        def add_chunk(self, chunk_results, chunk_index=None, *a, **k):
            if first is not None and not first:
                first.append(time.perf_counter())
            self.results.extend(chunk_results)

        def get(self):
            return self.results

    handler = Collect() if first is not None else None
    m = TaskManager(task_class, result_handler=handler, use_ray=True, n_cores=W)
    saver = DatasetSaver(save_dir) if save_dir else None
    m.submit_tasks(items, chunk_size=chunk_size, kwargs_task=kwargs_task or {}, saver=saver,
                   save_interval=1000, checkpoint=bool(save_dir), progress=False)
    return m.get_results()


_ray_worker = None


def run_ray(task_class, items, chunk_size, kwargs_task=None, first=None):
    """The seed's _submit_ray: one remote task per chunk, at most
    max_concurrent_tasks in flight, finished chunks flushed in order."""
    import ray

    global _ray_worker
    if _ray_worker is None:
        @ray.remote
        def ray_worker(task_class, chunk, **kwargs_task):
            return task_class().process_items(chunk, **kwargs_task)
        _ray_worker = ray_worker
    kwargs_task = kwargs_task or {}
    futures, index_of, pending, results = [], {}, {}, []
    next_flush = 0

    def collect_one():
        nonlocal futures, next_flush
        done, futures = ray.wait(futures, num_returns=1)
        ref = done[0]
        pending[index_of.pop(ref)] = ray.get(ref)
        while next_flush in pending:
            if first is not None and not first:
                first.append(time.perf_counter())
            results.extend(pending.pop(next_flush))
            next_flush += 1

    for i, start in enumerate(range(0, len(items), chunk_size)):
        if len(futures) >= W:
            collect_one()
        ref = _ray_worker.options(num_cpus=1).remote(task_class, items[start:start + chunk_size], **kwargs_task)
        futures.append(ref)
        index_of[ref] = i
    while futures:
        collect_one()
    return results


# --- measuring -----------------------------------------------------------------

def timed(fn, runs, expected):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        assert out == expected, "wrong results"
    return statistics.median(times)


def overhead_us(wall, seq, n_chunks):
    return (wall * W - seq) / n_chunks * 1e6


def main(argv=None):
    global BURN_ITERS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller inputs (a rough check)")
    ap.add_argument("--no-ray", action="store_true", help="skip Ray")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    scale = 0.2 if args.quick else 1.0
    n1 = int(20_000 * scale)          # chunk size 1
    n1_ray = int(2_000 * scale)       # Ray pays ~2.5 ms per chunk
    n100 = int(200_000 * scale)       # chunk size 100
    n100_ray = int(100_000 * scale)
    n_cpu = int(4_000 * scale)        # ~1 ms items, chunks of 10
    BURN_ITERS = calibrate()
    meta = {"python": sys.version.split()[0], "workers": W, "runs": args.runs, "burn_iters": BURN_ITERS}
    rows = {}

    def row(name, **kw):
        rows[name] = {k: round(v, 2) if isinstance(v, float) else v for k, v in kw.items()}
        print(f"  {name:42} " + "  ".join(f"{k}={rows[name][k]}" for k in kw), flush=True)

    items1, items100, items_cpu = list(range(n1)), list(range(n100)), list(range(n_cpu))
    exp1, exp100 = [x * x for x in items1], [x * x for x in items100]
    exp_cpu = [x * x for x in items_cpu]
    seq1 = timed(lambda: run_seq(square, items1), args.runs, exp1)
    seq100 = timed(lambda: run_seq(square, items100), args.runs, exp100)
    seq_cpu = timed(lambda: run_seq(burn_default, items_cpu), 1, exp_cpu)
    print(f"sequential: square {seq1 / n1 * 1e9:.0f} ns/item, burn {seq_cpu / n_cpu * 1e3:.3f} ms/item")

    # ---- time to the first result, from nothing running
    first = []
    t0 = time.perf_counter()
    run_raygent(SquareTask, [1, 2, 3], 1, first=first)
    row("raygent first result", ms=(first[0] - t0) * 1e3)
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(W) as pool:
        next(pool.imap(square, [1, 2, 3], chunksize=1))
        row("Pool(fork) first result", ms=(time.perf_counter() - t0) * 1e3)
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(W) as pool:
        next(pool.imap(square, [1, 2, 3], chunksize=1))
        row("Pool(spawn) first result", ms=(time.perf_counter() - t0) * 1e3)

    # ---- raygent
    for cs, items, exp, seq in ((1, items1, exp1, seq1), (100, items100, exp100, seq100)):
        wall = timed(lambda: run_raygent(SquareTask, items, cs), args.runs, exp)
        row(f"raygent square cs={cs}", n=len(items), items_per_s=len(items) / wall,
            overhead_us_per_chunk=overhead_us(wall, seq, -(-len(items) // cs)))
    with tempfile.TemporaryDirectory(prefix="raygent-bench-") as tmp:
        runs = iter(range(args.runs))

        def saved():
            return run_raygent(BurnTask, items_cpu, 10, {"iters": BURN_ITERS}, os.path.join(tmp, f"r{next(runs)}"))
        wall = timed(saved, args.runs, exp_cpu)
    row("raygent cpu-bound (saving, checkpointed)", n=n_cpu, items_per_s=n_cpu / wall,
        efficiency=seq_cpu / (wall * W))

    # ---- multiprocessing.Pool.imap (fork: Linux's default)
    with mp.get_context("fork").Pool(W) as pool:
        pool.map(square, range(W))
        for cs, items, exp, seq in ((1, items1, exp1, seq1), (100, items100, exp100, seq100)):
            wall = timed(lambda: run_pool(pool, square, items, cs), args.runs, exp)
            row(f"Pool.imap square cs={cs}", n=len(items), items_per_s=len(items) / wall,
                overhead_us_per_chunk=overhead_us(wall, seq, -(-len(items) // cs)))
        wall = timed(lambda: run_pool(pool, burn_default, items_cpu, 10), args.runs, exp_cpu)
        row("Pool.imap cpu-bound", n=n_cpu, items_per_s=n_cpu / wall, efficiency=seq_cpu / (wall * W))

    # ---- Ray
    if not args.no_ray:
        import ray
        meta["ray"] = ray.__version__
        first = []
        t0 = time.perf_counter()
        ray.init(num_cpus=W, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 _temp_dir=tempfile.mkdtemp(prefix="ray-"))
        t_init = time.perf_counter()
        run_ray(SquareTask, [1, 2, 3], 1, first=first)
        row("Ray first result (with ray.init)", ms=(first[0] - t0) * 1e3, init_ms=(t_init - t0) * 1e3)
        first = []
        t0 = time.perf_counter()
        run_ray(SquareTask, [1, 2, 3], 1, first=first)
        row("Ray first result (after ray.init)", ms=(first[0] - t0) * 1e3)
        try:
            for cs, n, seq_per_item in ((1, n1_ray, seq1 / n1), (100, n100_ray, seq100 / n100)):
                items = list(range(n))
                wall = timed(lambda: run_ray(SquareTask, items, cs), args.runs, [x * x for x in items])
                row(f"Ray square cs={cs}", n=n, items_per_s=n / wall,
                    overhead_us_per_chunk=overhead_us(wall, seq_per_item * n, -(-n // cs)))
            wall = timed(lambda: run_ray(BurnTask, items_cpu, 10, {"iters": BURN_ITERS}), args.runs, exp_cpu)
            row("Ray cpu-bound", n=n_cpu, items_per_s=n_cpu / wall, efficiency=seq_cpu / (wall * W))
        finally:
            ray.shutdown()

    print("\ngoals:")
    goals = {}
    for cs in (1, 100):
        if f"Ray square cs={cs}" in rows:
            ratio = rows[f"Ray square cs={cs}"]["overhead_us_per_chunk"] / max(
                rows[f"raygent square cs={cs}"]["overhead_us_per_chunk"], 1e-9)
            goals[f"overhead vs Ray cs={cs}"] = round(ratio, 1)
            print(f"  overhead per chunk, chunk size {cs}: Ray / raygent = {ratio:.0f}x (goal >= 100x)")
    ratio = rows["raygent cpu-bound (saving, checkpointed)"]["items_per_s"] / rows["Pool.imap cpu-bound"]["items_per_s"]
    goals["cpu-bound vs Pool.imap"] = round(ratio, 3)
    print(f"  CPU-bound throughput: raygent / Pool.imap = {ratio:.3f} (goal >= 0.95)")
    print(json.dumps(meta))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows, "goals": goals}, f, indent=2)


if __name__ == "__main__":
    main()
