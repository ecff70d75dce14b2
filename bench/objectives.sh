#!/usr/bin/env bash
# Multi-objective samplers on ZDT1 and ZDT2 (six variables, both objectives minimised), no
# training: `sweep`'s TPE over two objectives and random search against Optuna's TPESampler and
# NSGAIISampler (defaults, seed set) and RandomSampler, over SEEDS seeds, sequential. Prints the
# median hypervolume (against (1.1, 11)) after 50 and 200 trials of each, and ours over Optuna's
# TPE (above 1: ours is better).
#
# Usage: bench/objectives.sh [PYTHON]   (PYTHON needs `pip install optuna`)
#        SEEDS=30 (default) TRIALS=200
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
PY=${1:-python3}
need_python "$PY" "optuna" "optuna"
SEEDS=${SEEDS:-30}
TRIALS=${TRIALS:-200}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cargo bench --quiet --bench objectives -- --out "$T/sweep.jsonl" --seeds "$SEEDS" --trials "$TRIALS"
for s in tpe nsga2 random; do
  "$PY" bench/objectives_optuna.py --out "$T/optuna-$s.jsonl" --sampler "$s" --seeds "$SEEDS" --trials "$TRIALS"
done
"$PY" - "$T" <<'PYEOF'
import collections, glob, json, statistics, sys
runs = collections.defaultdict(list)
seconds = collections.defaultdict(float)
for path in glob.glob(f"{sys.argv[1]}/*.jsonl"):
    for line in open(path):
        r = json.loads(line)
        runs[(r["function"], r["sampler"])].append(r["hypervolume"])
        seconds[(r["function"], r["sampler"])] += r["seconds"]
order = ["sweep-tpe", "optuna-tpe", "optuna-nsga2", "sweep-random", "optuna-random"]
print("| function | sampler | median hypervolume after 50 | after 200 | ours / Optuna TPE's | seconds, all seeds |")
print("|---|---|--:|--:|---|--:|")
for f in ("zdt1", "zdt2"):
    base = [statistics.median(r[i] for r in runs[(f, "optuna-tpe")]) for i in range(2)]
    for s in order:
        if (f, s) not in runs:
            continue
        med = [statistics.median(r[i] for r in runs[(f, s)]) for i in range(2)]
        ratio = " / ".join(f"{m / b:.3f}" for m, b in zip(med, base)) if s.startswith("sweep-tpe") else ""
        print(f"| {f} | {s} | {med[0]:.3f} | {med[1]:.3f} | {ratio} | {seconds[(f, s)]:.1f} |")
PYEOF
