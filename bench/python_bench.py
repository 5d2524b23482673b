#!/usr/bin/env python3
"""The same Python task three ways, in one run: raygent's TaskManager
(worker processes), multiprocessing.Pool.imap with chunksize, and Ray as
the seed uses it (one remote task per chunk, max_concurrent_tasks in
flight, results flushed in input order).

Measured, on all cores (W = os.cpu_count() workers everywhere):

  overhead per chunk   squaring ints at chunk sizes 1 and 100:
                       (wall * W - sequential compute) / chunks, i.e. the
                       CPU time each chunk costs beyond the useful work
                       (as the Ray peer driver defines it), with the wall
                       from the first result to the last: raygent's
                       start-up (its worker processes start with each
                       submit_tasks) is not charged to its chunks, as
                       Pool's pool start-up and Ray's ray.init are not
  CPU-bound throughput items/s of a pure-Python task of ~1 ms per item,
                       chunks of 10, whole runs (raygent's start-up
                       included); raygent also saves every result
                       (DatasetSaver, CBOR) with a checkpoint (exact
                       resume) and retries failed chunks, Pool.imap does
                       neither; raygent and Pool run back to back, and the
                       ratio is the median of the pairs' ratios
  time to first result from nothing running (no pool, no workers, no Ray)
                       to the first result in the driver

Every figure is the median of --runs runs; every result is checked.

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


def run_pool(pool, func, items, chunk_size, marks=None):
    if marks is None:
        return list(pool.imap(func, items, chunksize=chunk_size))
    it = pool.imap(func, items, chunksize=chunk_size)
    out = [next(it)]
    first = time.perf_counter()
    out.extend(it)
    marks[:] = [first, time.perf_counter()]
    return out


def run_raygent(task_class, items, chunk_size, kwargs_task=None, save_dir=None, first=None, marks=None):
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
    t0 = time.perf_counter()
    m.submit_tasks(items, chunk_size=chunk_size, kwargs_task=kwargs_task or {}, saver=saver,
                   save_interval=1000, checkpoint=bool(save_dir), progress=False)
    if marks is not None:
        marks[:] = [t0 + m.report["first_result_s"], t0 + m.report["last_result_s"]]
    return m.get_results()


_ray_worker = None


def run_ray(task_class, items, chunk_size, kwargs_task=None, first=None, marks=None):
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
    marks_first = []

    def collect_one():
        nonlocal futures, next_flush
        done, futures = ray.wait(futures, num_returns=1)
        ref = done[0]
        pending[index_of.pop(ref)] = ray.get(ref)
        while next_flush in pending:
            if not marks_first:
                marks_first.append(time.perf_counter())
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
    if marks is not None:
        marks[:] = [marks_first[0], time.perf_counter()]
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


def once(fn, expected):
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    assert out == expected, "wrong results"
    return wall


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
    sizes = {1: int(20_000 * scale), 100: int(1_000_000 * scale)}
    ray_sizes = {1: int(2_000 * scale), 100: int(100_000 * scale)}  # Ray pays ~2 ms per chunk
    n_cpu = int(3_000 * scale)        # ~1 ms items, chunks of 10; and twice as many
    BURN_ITERS = calibrate()
    meta = {"python": sys.version.split()[0], "workers": W, "runs": args.runs, "burn_iters": BURN_ITERS}
    rows = {}

    def row(name, **kw):
        rows[name] = {k: round(v, 3) if isinstance(v, float) else v for k, v in kw.items()}
        print(f"  {name:44} " + "  ".join(f"{k}={rows[name][k]}" for k in kw), flush=True)

    sq_ns = timed(lambda: run_seq(square, list(range(100_000))), args.runs, [x * x for x in range(100_000)]) / 1e5
    burn_s = timed(lambda: run_seq(burn_default, list(range(200))), 1, [x * x for x in range(200)]) / 200
    print(f"sequential: square {sq_ns * 1e9:.0f} ns/item, burn {burn_s * 1e3:.3f} ms/item; {W} workers")

    # ---- time to the first result, from nothing running
    for _ in range(args.runs):
        first = []
        t0 = time.perf_counter()
        run_raygent(SquareTask, [1, 2, 3], 1, first=first)
        rows.setdefault("_first", []).append((first[0] - t0) * 1e3)
    row("raygent first result", ms=statistics.median(rows.pop("_first")))
    for ctx in ("fork", "spawn"):
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            with mp.get_context(ctx).Pool(W) as pool:
                next(pool.imap(square, [1, 2, 3], chunksize=1))
                times.append((time.perf_counter() - t0) * 1e3)
        row(f"Pool({ctx}) first result (pool start included)", ms=statistics.median(times))

    # ---- overhead per chunk, in steady state: from the first result to the
    # last (so that start-up, reported above, is not charged to the chunks:
    # raygent starts its workers with each submit_tasks, Pool and Ray are
    # started beforehand). The sequential baseline is measured with each run
    # (the machine's load drifts); the median over runs is reported.
    def steady(name, run, cs, n):
        items = list(range(n))
        expected = [x * x for x in items]
        walls, overheads = [], []
        for _ in range(args.runs):
            seq = once(lambda: run_seq(square, items), expected) * (n - cs) / n
            marks = []
            once(lambda: run(items, cs, marks), expected)
            chunks = -(-n // cs) - 1
            walls.append((marks[1] - marks[0]) / chunks * 1e6)
            overheads.append(overhead_us(marks[1] - marks[0], seq, chunks))
        row(f"{name} square cs={cs}", n=n, wall_us_per_chunk=statistics.median(walls),
            overhead_us_per_chunk=statistics.median(overheads))

    for cs, n in sizes.items():
        steady("raygent", lambda items, cs, marks: run_raygent(SquareTask, items, cs, marks=marks), cs, n)
    with mp.get_context("fork").Pool(W) as pool:
        pool.map(square, range(W))
        for cs, n in sizes.items():
            steady("Pool.imap", lambda items, cs, marks: run_pool(pool, square, items, cs, marks), cs, n)

    # ---- CPU-bound throughput: raygent saving (DatasetSaver, checkpointed;
    # its start-up included) and Pool.imap, run back to back in alternating
    # order; the ratio is the median of the pairs' ratios.
    big = list(range(2 * n_cpu))
    eb = [x * x for x in big]
    rw, pw, ratios = [], [], []
    with tempfile.TemporaryDirectory(prefix="raygent-bench-") as tmp, mp.get_context("fork").Pool(W) as pool:
        pool.map(square, range(W))
        for r in range(args.runs):
            def rg():
                return once(lambda: run_raygent(BurnTask, big, 10, {"iters": BURN_ITERS},
                                                os.path.join(tmp, f"r{r}")), eb)

            def pl():
                return once(lambda: run_pool(pool, burn_default, big, 10), eb)
            a, b = (rg(), pl()) if r % 2 == 0 else tuple(reversed((pl(), rg())))
            rw.append(a)
            pw.append(b)
            ratios.append(b / a)
    for name, w in (("raygent cpu-bound (saving, checkpointed)", rw), ("Pool.imap cpu-bound", pw)):
        wall = statistics.median(w)
        row(name, n=len(big), items_per_s=len(big) / wall, efficiency=burn_s * len(big) / (wall * W))
    cpu_ratio = statistics.median(ratios)
    meta["cpu_pair_ratios"] = [round(x, 3) for x in ratios]

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
        row("Ray first result (ray.init included)", ms=(first[0] - t0) * 1e3, init_ms=(t_init - t0) * 1e3)
        first = []
        t0 = time.perf_counter()
        run_ray(SquareTask, [1, 2, 3], 1, first=first)
        row("Ray first result (after ray.init)", ms=(first[0] - t0) * 1e3)
        try:
            for cs, n in ray_sizes.items():
                steady("Ray", lambda items, cs, marks: run_ray(SquareTask, items, cs, marks=marks), cs, n)
            wall = timed(lambda: run_ray(BurnTask, big, 10, {"iters": BURN_ITERS}), args.runs, eb)
            row("Ray cpu-bound", n=len(big), items_per_s=len(big) / wall, efficiency=burn_s * len(big) / (wall * W))
        finally:
            ray.shutdown()

    print("\ngoals:")
    goals = {}
    for cs in (1, 100):
        if f"Ray square cs={cs}" in rows:
            ours = rows[f"raygent square cs={cs}"]["overhead_us_per_chunk"]
            ratio = rows[f"Ray square cs={cs}"]["overhead_us_per_chunk"] / max(ours, 1e-9)
            goals[f"overhead vs Ray cs={cs}"] = round(ratio, 1)
            print(f"  overhead per chunk, chunk size {cs}: Ray / raygent = {ratio:.0f}x (goal >= 100x)")
    goals["cpu-bound vs Pool.imap"] = round(cpu_ratio, 3)
    print(f"  CPU-bound throughput, raygent / Pool.imap: {cpu_ratio:.3f} (median of paired runs "
          f"{meta['cpu_pair_ratios']}; goal >= 0.95)")
    print(json.dumps(meta))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows, "goals": goals}, f, indent=2)


if __name__ == "__main__":
    main()
