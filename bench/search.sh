#!/usr/bin/env bash
# Smart search side by side, in one run on one machine: the search space of sweeps/bayes.toml
# (its run_cap trials of its epochs, 2 in parallel) searched by
#   1. PyTorch + Optuna (TPE, a pruner: median by default, as measured before `sweep` had one),
#   2. `sweep` with bayes and the sweep file's pruner (ASHA, rungs at 2 and 6 epochs; PRUNER
#      replaces it),
#   3. `sweep` with the same file without [early_terminate] (every trial trains every epoch),
# all on the same synthetic dataset at 64x64. Prints wall clock, trials pruned, epochs trained, and
# the best validation mean IoU that each had recorded at 25%, 50% and 100% of Optuna's wall clock.
#
# Usage: bench/search.sh [PYTHON]   (PYTHON needs `pip install torch optuna pillow numpy`)
#        OPTUNA_PRUNER=median|hyperband  PRUNER="type = \"asha\"..." (replaces the file's pruner)
#        KEEP=1 keeps the trackers, logs and Optuna's epochs in the printed directory
#        SEED=n replaces the sweep file's seed (and Optuna's sampler seed): another search
#        NO_OPTUNA=1 runs only the two `sweep` legs (the time base is then the pruned leg's)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
PY=${1:-python3}
need_python "$PY" "torch, optuna, PIL, numpy" "torch optuna pillow numpy"
# SWEEP_BIN=path measures that binary instead of building this checkout's release binary.
BIN=$(sweep_bin)
T=$(mktemp -d)
if [ -n "${KEEP:-}" ]; then echo "results in $T"; else trap 'rm -rf "$T"' EXIT; fi
synth_cars "$BIN" "$T/cars"
SEED=${SEED:-$(sed -n 's/^seed = \([0-9]*\).*/\1/p' sweeps/bayes.toml)}
sed -e "s|^source = \"synthetic\"|source = \"$T/cars\"|" -e '/^synthetic_count/d' -e "s/^seed = .*/seed = $SEED/" sweeps/bayes.toml > "$T/pruned.toml"
if [ -n "${PRUNER:-}" ]; then
  awk -v pruner="$PRUNER" '/^\[early_terminate\]/ { print; print pruner; skip = 1; next } /^\[/ { skip = 0 } !skip' "$T/pruned.toml" > "$T/p.toml"
  mv "$T/p.toml" "$T/pruned.toml"
fi
awk '/^\[early_terminate\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' "$T/pruned.toml" > "$T/unpruned.toml"

now() { date +%s.%N; }
t0=$(now)
TRIALS=$(sed -n 's/^run_cap = \([0-9]*\).*/\1/p' sweeps/bayes.toml)
EPOCHS=$(sed -n 's/^epochs = \([0-9]*\).*/\1/p' sweeps/bayes.toml)
if [ -z "${NO_OPTUNA:-}" ]; then
  (cd bench && "$PY" optuna_search.py --data "$T/cars" --out "$T/optuna.jsonl" --trials "$TRIALS" --epochs "$EPOCHS" --pruner "${OPTUNA_PRUNER:-median}" --seed "$SEED" > "$T/optuna.json")
fi
t1=$(now)
"$BIN" --runs-dir "$T/pruned" run "$T/pruned.toml" --workers 2 --plain --no-plot > "$T/pruned.log"
t2=$(now)
"$BIN" --runs-dir "$T/unpruned" run "$T/unpruned.toml" --workers 2 --plain --no-plot > "$T/unpruned.log"
t3=$(now)

"$PY" - "$T" "$t0" "$t1" "$t2" "$t3" <<'EOF'
import json, sqlite3, sys
T, t0, t1, t2, t3 = sys.argv[1], *map(float, sys.argv[2:])
with_optuna = t1 - t0 > 1
W = t1 - t0 if with_optuna else t2 - t1  # Optuna's wall clock (else the pruned leg's): the time base

def best_by(points, t):
    seen = [v for wall, v in points if wall <= t]
    return max(seen) if seen else float("nan")

rows = []
if with_optuna:
    optuna = [json.loads(l) for l in open(f"{T}/optuna.jsonl")]
    summary = json.load(open(f"{T}/optuna.json"))
    rows.append(("PyTorch + Optuna (TPE, pruner)", W, summary["trials"], summary["pruned"], len(optuna), [(e["wall"], e["val_iou"]) for e in optuna]))
for name, start, end in (("pruned", t1, t2), ("unpruned", t2, t3)):
    db = sqlite3.connect(f"{T}/{name}/sweep.db")
    points = [(wall - start, v) for wall, v in db.execute("SELECT wall, value FROM metrics WHERE split = 'val' AND name = 'iou'")]
    trials, pruned = db.execute("SELECT COUNT(*), SUM(status = 'pruned') FROM runs").fetchone()
    label = "sweep, bayes + " + ("its pruner" if name == "pruned" else "no pruning")
    rows.append((label, end - start, trials, pruned, len(points), points))

base = "Optuna's" if with_optuna else "the pruned sweep's"
print(f"| search | wall clock | trials | pruned | epochs trained | best val IoU at 25% / 50% / 100% of {base} {W:.0f} s | best val IoU at its end |")
print("|---|--:|--:|--:|--:|--:|--:|")
for label, wall, trials, pruned, epochs, points in rows:
    at = " / ".join(f"{best_by(points, f * W):.4f}" for f in (0.25, 0.5, 1.0))
    print(f"| {label} | {wall:.0f} s | {trials} | {pruned} | {epochs} | {at} | {best_by(points, float('inf')):.4f} |")
(_, _, _, _, e_pruned, p_pruned), (_, _, _, _, e_full, p_full) = rows[-2], rows[-1]
print()
print(f"Pruning kept {e_pruned}/{e_full} = {e_pruned / e_full:.0%} of the unpruned sweep's epochs; "
      f"best val IoU {best_by(p_pruned, float('inf')):.4f} vs {best_by(p_full, float('inf')):.4f} "
      f"(difference {best_by(p_full, float('inf')) - best_by(p_pruned, float('inf')):+.4f}).")
EOF
