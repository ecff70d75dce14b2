#!/usr/bin/env bash
# Samplers on cheap functions, no training: `sweep`'s TPE (the shipped defaults: multivariate
# with a constant liar), `sweep`'s TPE as it was before (univariate, no liar) and random search,
# against Optuna's TPESampler() (its defaults, seed set) and RandomSampler, on Branin, Hartmann-6,
# a mixed space (a categorical and a conditional parameter) and Branin with noise, over SEEDS seeds,
# with 1 worker and 4 simulated parallel workers. Prints the median simple regret after 20, 50
# and 100 trials of each, and ours over Optuna's (below 1: ours is better) with its 90% interval
# (a bootstrap over seeds: how far the ratio moves with the seeds drawn).
#
# Usage: bench/samplers.sh [PYTHON]   (PYTHON needs `pip install optuna numpy`)
#        SEEDS=30 (default) TRIALS=100
#        JOBS=2: Optuna's TPE half in that many processes, each a share of the seeds (our half
#        takes seconds; Optuna's 0.4-1 s a search on these VMs, so 2000 seeds, 16,000 searches,
#        take about 2.5 hours in one process)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
PY=${1:-python3}
need_python "$PY" "optuna, numpy" "optuna numpy"
SEEDS=${SEEDS:-30}
TRIALS=${TRIALS:-100}
JOBS=${JOBS:-1}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "bench/samplers.sh: JOBS=$JOBS: give a whole number of processes, 1 or more" >&2; exit 2; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cargo bench --quiet --bench samplers -- --out "$T/sweep.jsonl" --seeds "$SEEDS" --trials "$TRIALS"
share=$(( (SEEDS + JOBS - 1) / JOBS ))
jobs=()
for ((first = 0; first < SEEDS; first += share)); do
  n=$(( SEEDS - first < share ? SEEDS - first : share ))
  "$PY" bench/samplers_optuna.py --out "$T/optuna-$first.jsonl" --first-seed "$first" --seeds "$n" --trials "$TRIALS" &
  jobs+=($!)
done
# Each one waited for by its pid, so that one that fails stops the script (a bare `wait` says 0).
for job in "${jobs[@]}"; do wait "$job"; done
cat "$T"/optuna-[0-9]*.jsonl > "$T/optuna.jsonl"
"$PY" bench/samplers_optuna.py --out "$T/optuna-random.jsonl" --sampler random --seeds "$SEEDS" --trials "$TRIALS"
"$PY" - "$T" <<'PYEOF'
import collections, json, statistics, sys
import numpy as np
T = sys.argv[1]
bootstrap = np.random.default_rng(0)

def interval(ours, theirs):
    """The 5th and 95th percentiles of the ratio of medians over seeds drawn again (each half alone)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    ratios = [np.median(bootstrap.choice(ours, len(ours))) / np.median(bootstrap.choice(theirs, len(theirs))) for _ in range(1000)]
    return np.quantile(ratios, 0.05), np.quantile(ratios, 0.95)

runs = collections.defaultdict(list)
for name in ("sweep", "optuna", "optuna-random"):
    for line in open(f"{T}/{name}.jsonl"):
        r = json.loads(line)
        runs[(r["function"], r["workers"], r["sampler"])].append(r["regret"])
functions = ["branin", "hartmann6", "mixed", "noisy_branin"]
samplers = ["sweep-tpe", "optuna-tpe", "sweep-tpe-univariate", "sweep-random", "optuna-random"]
first = next(iter(runs.values()))[0]
ks = [k for k in (20, 50, 100)][: len(first)]
print("| function | workers | sampler | " + " | ".join(f"median regret after {k}" for k in ks) + " | ours / Optuna's (90% interval) |")
print("|---|--:|---|" + "--:|" * len(ks) + "---|")
worst, cells, within = 0.0, 0, 0
for f in functions:
    for w in sorted({key[1] for key in runs}):
        base = [statistics.median(r[i] for r in runs[(f, w, "optuna-tpe")]) for i in range(len(ks))]
        for s in samplers:
            if (f, w, s) not in runs:
                continue
            med = [statistics.median(r[i] for r in runs[(f, w, s)]) for i in range(len(ks))]
            ratio = ""
            if s.startswith("sweep-tpe"):
                ratios = [m / b if b > 0 else float("nan") for m, b in zip(med, base)]
                ratio = " / ".join(f"{x:.2f}" for x in ratios)
                if s == "sweep-tpe":
                    worst = max(worst, *ratios)
                    cells, within = cells + len(ratios), within + sum(x <= 1.1 for x in ratios)
                    spans = [interval([r[i] for r in runs[(f, w, s)]], [r[i] for r in runs[(f, w, "optuna-tpe")]]) for i in range(len(ks))]
                    ratio += " (" + ", ".join(f"{lo:.2f}-{hi:.2f}" for lo, hi in spans) + ")"
            print(f"| {f} | {w} | {s} | " + " | ".join(f"{m:.4g}" for m in med) + f" | {ratio} |")
print(f"\nWorst ratio of medians, shipped TPE over Optuna's: {worst:.2f} (target: at most 1.1); {within} of {cells} cells within 1.1")
PYEOF
