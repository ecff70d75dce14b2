#!/usr/bin/env bash
# Multi-objective samplers on ZDT1 and ZDT2 (six variables, both objectives minimised) and the
# constrained TNK (two variables, two constraints), no training: `sweep`'s TPE and NSGA-II over two
# objectives and random search against Optuna's TPESampler and NSGAIISampler (defaults, seed set;
# NSGA-II also at our population, 20) and RandomSampler, over SEEDS seeds, sequential. Prints the
# median hypervolume of the feasible trials after 50 and 200 trials of each, and ours over Optuna's
# same sampler (above 1: ours is better; NSGA-II against Optuna's at the same population).
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
"$PY" bench/objectives_optuna.py --out "$T/optuna-nsga2-20.jsonl" --sampler nsga2 --population 20 --seeds "$SEEDS" --trials "$TRIALS"
"$PY" - "$T" <<'PYEOF'
import collections, glob, json, statistics, sys
runs = collections.defaultdict(list)
seconds = collections.defaultdict(float)
for path in glob.glob(f"{sys.argv[1]}/*.jsonl"):
    for line in open(path):
        r = json.loads(line)
        runs[(r["function"], r["sampler"])].append(r["hypervolume"])
        seconds[(r["function"], r["sampler"])] += r["seconds"]
order = ["sweep-tpe", "optuna-tpe", "sweep-nsga2", "optuna-nsga2-20", "optuna-nsga2", "sweep-random", "optuna-random"]
against = {"sweep-tpe": "optuna-tpe", "sweep-nsga2": "optuna-nsga2-20"}
print("| function | sampler | median hypervolume after 50 | after 200 | ours / Optuna's | seconds, all seeds |")
print("|---|---|--:|--:|---|--:|")
for f in ("zdt1", "zdt2", "tnk"):
    for s in order:
        if (f, s) not in runs:
            continue
        med = [statistics.median(r[i] for r in runs[(f, s)]) for i in range(2)]
        ratio = ""
        if s in against and (f, against[s]) in runs:
            base = [statistics.median(r[i] for r in runs[(f, against[s])]) for i in range(2)]
            ratio = " / ".join(f"{m / b:.3f}" if b > 0 else "inf" for m, b in zip(med, base)) + f" (vs {against[s]})"
        print(f"| {f} | {s} | {med[0]:.3f} | {med[1]:.3f} | {ratio} | {seconds[(f, s)]:.1f} |")
PYEOF
