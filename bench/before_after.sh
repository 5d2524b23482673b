#!/usr/bin/env bash
# The benchmarks of two revisions in one run, so that "before" and "after"
# share the machine's state: builds BASE (a git revision) in a temporary
# worktree and the current checkout, both in release, then runs each
# benchmark in both, alternating (base, current, base, current, ...), and
# prints every run's output under a heading.
#
#   bench/before_after.sh BASE [ROUNDS]      # ROUNDS=2 by default
#
# The benchmarks: the runtime's overhead per chunk (bench_runtime), saver
# throughput (bench_save), checkpoint overhead and resume time (bench_ckpt,
# shortened by RAYGENT_BENCH_* below). Both revisions must have them under
# the same names (they do from 0.1 on). Needs what the benchmarks need
# (moto_server for bench_save's S3 part). RAYGENT_BENCHES="bench_runtime ..." runs
# only those; RAYGENT_BASE_DIR reuses a built checkout of BASE.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: bench/before_after.sh BASE [ROUNDS]}
rounds=${2:-2}
head=$(git rev-parse --short HEAD)
base_short=$(git rev-parse --short "$base")
# RAYGENT_BASE_DIR: a checkout of BASE to build in (and keep), to save the
# base's build on a second run; by default a temporary worktree.
if [ -n "${RAYGENT_BASE_DIR:-}" ]; then
    base_dir=$RAYGENT_BASE_DIR
    [ "$(git -C "$base_dir" rev-parse --short HEAD)" = "$base_short" ] ||
        { echo "RAYGENT_BASE_DIR=$base_dir is not at $base_short" >&2; exit 2; }
else
    tmp=$(mktemp -d)
    trap 'git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
    git worktree add --detach "$tmp/base" "$base" >/dev/null
    base_dir=$tmp/base
fi

examples=(raygent-actors:bench_runtime raygent-savers:bench_save raygent-actors:bench_ckpt)
# RAYGENT_BENCHES="bench_runtime ...": only these of the three.
if [ -n "${RAYGENT_BENCHES:-}" ]; then
    chosen=()
    for e in "${examples[@]}"; do
        case " $RAYGENT_BENCHES " in *" ${e##*:} "*) chosen+=("$e") ;; esac
    done
    examples=("${chosen[@]}")
fi
build() {
    local dir=$1
    for e in "${examples[@]}"; do
        (cd "$dir" && cargo build --quiet --release -p "${e%%:*}" --example "${e##*:}")
    done
}
echo "# building $base_short (base) and $head (current)" >&2
build "$base_dir"
build .

# Short settings: minutes per round, not hours.
export RAYGENT_BENCH_REPS=${RAYGENT_BENCH_REPS:-1}
export RAYGENT_BENCH_MIB=${RAYGENT_BENCH_MIB:-256}
export RAYGENT_BENCH_RUNS=${RAYGENT_BENCH_RUNS:-11}
# Resume keeps its default (1,000,000 chunks, about 2 s): shorter, the
# SIGKILL comes before the first checkpoint (at most one a second) and part
# 2b resumes from nothing.

for round in $(seq "$rounds"); do
    for e in "${examples[@]}"; do
        name=${e##*:}
        for side in base current; do
            if [ "$side" = base ]; then dir=$base_dir; rev=$base_short; else dir=.; rev=$head; fi
            printf '\n===== round %s: %s, %s (%s), load %s\n' "$round" "$name" "$side" "$rev" \
                "$(cut -d' ' -f1 /proc/loadavg)"
            (cd "$dir" && "target/release/examples/$name")
        done
    done
done
