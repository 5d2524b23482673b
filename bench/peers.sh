#!/usr/bin/env bash
# Cost per item of a trivial task (square a number), on this machine, in one
# run: raygent process workers (line protocol, chunk sizes 1 and 100; also
# Rust CBOR workers), GNU parallel running the same shell command once per
# item, Ray with the same chunking (bench/ray_square.py), and raygent
# in-process. Prints a table of µs per item and ratios.
#
#   bench/peers.sh            # RUNS=3 (median of 3), PAR_N=2000 items for GNU parallel
#
# Needs: cargo, python3, GNU parallel (apt-get install parallel), Ray
# (pip install ray; PYTHON=path/to/python picks the interpreter that has
# it). A missing peer is reported and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
PAR_N=${PAR_N:-2000}
PYTHON=${PYTHON:-python3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "# machine: $(nproc) cores, $(uname -sr); runs: $RUNS (median)" >&2
cargo build --quiet --release -p raygent-actors --example worker_bench
echo "# raygent ..." >&2
target/release/examples/worker_bench "$RUNS" > "$out/rows.tsv"

if command -v parallel > /dev/null; then
    echo "# GNU parallel ($PAR_N items, -j2, one shell per item) ..." >&2
    times=()
    for _ in $(seq "$RUNS"); do
        t0=$(date +%s.%N)
        seq 0 $((PAR_N - 1)) | parallel -k -j2 'echo $(({}*{}))' > "$out/par.txt"
        t1=$(date +%s.%N)
        times+=("$(echo "$t1 - $t0" | bc -l)")
        # Same results, in order.
        seq 0 $((PAR_N - 1)) | awk '{print $1*$1}' | cmp -s - "$out/par.txt" \
            || { echo "GNU parallel gave wrong results" >&2; exit 1; }
    done
    med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int(NR/2)+1]}')
    printf 'GNU parallel (one sh per item)\t%d\t1\t%.4f\t%.2f\n' "$PAR_N" "$med" \
        "$(echo "$med / $PAR_N * 1000000" | bc -l)" >> "$out/rows.tsv"
else
    echo "# GNU parallel not installed: skipped (apt-get install parallel)" >&2
fi

if "$PYTHON" -c 'import ray' 2> /dev/null; then
    echo "# Ray (bench/ray_square.py: 100000 items in chunks of 100, 20000 in chunks of 1) ..." >&2
    RAY_USAGE_STATS_ENABLED=0 "$PYTHON" bench/ray_square.py --case 100000:100 --case 20000:1 \
        --runs "$RUNS" --workers 2 --in-flight 2 --json "$out/ray.json" > "$out/ray.log" 2>&1 \
        || { cat "$out/ray.log" >&2; exit 1; }
    python3 - "$out/ray.json" >> "$out/rows.tsv" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["rows"]:
    print(f"Ray {d['ray']} (remote task per chunk)\t{r['n']}\t{r['chunk_size']}\t{r['median_s']:.4f}\t{r['median_s'] / r['n'] * 1e6:.2f}")
PY
else
    echo "# Ray not installed for $PYTHON: skipped (pip install ray)" >&2
fi

python3 - "$out/rows.tsv" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
rows = [(n, int(items), int(chunk), float(s), float(us)) for n, items, chunk, s, us in rows]
par = next((us for n, _, _, _, us in rows if n.startswith("GNU parallel")), None)
ray = {chunk: us for n, _, chunk, _, us in rows if n.startswith("Ray")}
print(f"| {'runner':34} | chunk | {'items':>7} | {'µs/item':>9} | {'GNU parallel ÷ this':>19} | {'Ray (same chunk) ÷ this':>23} |")
print(f"|{'-'*36}|------:|{'-'*8}:|{'-'*10}:|{'-'*20}:|{'-'*24}:|")
for n, items, chunk, s, us in rows:
    vp = f"{par / us:.1f}x" if par else "-"
    vr = f"{ray[chunk] / us:.1f}x" if chunk in ray else "-"
    print(f"| {n:34} | {chunk:5} | {items:7} | {us:9.2f} | {vp:>19} | {vr:>23} |")
PY
