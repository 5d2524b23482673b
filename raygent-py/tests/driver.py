"""A job for the crash tests, run as its own process:

    python driver.py URL MODE N [SAVER]

MODE is parallel or sequential; SAVER is dataset (default) or jsonfile
(a Python saver that appends to a file and resumes by truncating it).
Prints STARTED when the job starts and DONE when it finished."""

from __future__ import annotations

import json
import os
import sys

from raygent import DatasetSaver, Saver, TaskManager

from tasks import SlowSquare


class JsonFileSaver(Saver):
    """Appends one JSON line per result; resumes by cutting the file back
    to the first ``next_index`` lines (atomically: a crash may come then too)."""

    def __init__(self, path):
        self.path = path

    def describe(self):
        return f"jsonl file {self.path}"

    def save(self, data, indices=None, **kwargs):
        with open(self.path, "a") as f:
            for r in data:
                f.write(json.dumps(r) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def check_empty(self):
        if os.path.exists(self.path) and os.path.getsize(self.path):
            raise ValueError(f"{self.path} is not empty")

    def resume(self, next_index):
        # A crash may hit resume itself: the file is replaced atomically.
        if not os.path.exists(self.path):
            return
        keep = []
        with open(self.path) as f:
            for i, line in enumerate(f):
                if i >= next_index:
                    break
                keep.append(line)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(keep)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def main():
    url, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    kind = sys.argv[4] if len(sys.argv) > 4 else "dataset"
    if kind == "dataset":
        saver, ckpt = DatasetSaver(url), True
    else:
        saver, ckpt = JsonFileSaver(os.path.join(url, "results.jsonl")), os.path.join(url, "ckpt")
        os.makedirs(url, exist_ok=True)
    manager = TaskManager(SlowSquare, use_ray=mode == "parallel", n_cores=2)
    print("STARTED", flush=True)
    manager.submit_tasks(range(n), chunk_size=10, saver=saver, save_interval=30, checkpoint=ckpt,
                         checkpoint_interval=0.02, kwargs_task={"delay": 0.003}, progress=False)
    print("DONE", manager.report["resumed_chunks"], flush=True)


if __name__ == "__main__":
    main()
