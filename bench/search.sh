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
#        OPTUNA_PRUNER=median|hyperband|asha  PRUNER="type = \"asha\"..." (replaces the file's pruner)
#        OPTUNA_ARGS="--pruner median --startup 2 --warmup 3": more arguments to
#          bench/optuna_search.py (they come last, so they win; see its --help)
#        KEEP=1 keeps the trackers, logs and Optuna's epochs in the printed directory
#        SEED=n replaces the sweep file's seed (and Optuna's sampler seed): another search
#        NO_OPTUNA=1 runs only the `sweep` legs (the time base is then the pruned leg's)
#
#        SEEDS="1 2 3 4 5": one search per seed instead (SEED is then unused): the Optuna leg and
#        the pruned `sweep` leg for each seed, the unpruned leg too only with UNPRUNED=1. Prints
#        one row per seed and search (wall clock, trials, pruned, epochs trained, best val IoU of
#        the completed trials), then per search the median wall clock, the mean and median best
#        val IoU and the total epochs, the ratio of the sweep's median wall clock to Optuna's,
#        and per seed when each search's best-so-far (any epoch, completed trial or not) first
#        reached the other's median best (Optuna's other is the pruned sweep, the sweeps' other
#        is Optuna). Each leg's clock starts when the script starts it (Optuna's epochs are
#        shifted by its imports and data loading to match).
#        SUMMARIZE=DIR (the directory KEEP=1 printed for a SEEDS run) prints those tables again
#        and runs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
PY=${1:-python3}

# seeds_summary PYTHON DIR: the SEEDS tables from DIR/legs.tsv (a line "seed search start end"
# per leg, search optuna, sweep or sweep-unpruned, times in Unix seconds) and, per seed,
# DIR/seed-N/{optuna.json, optuna.jsonl, pruned/sweep.db, unpruned/sweep.db}.
seeds_summary() {
  "$1" - "$2" <<'PY'
import json, math, sqlite3, statistics, sys
T = sys.argv[1]
nan = float("nan")
finite = lambda v: v is not None and math.isfinite(v)
LABEL = {"optuna": "PyTorch + Optuna", "sweep": "sweep, pruned", "sweep-unpruned": "sweep, no pruning"}
OTHER = {"optuna": "sweep", "sweep": "optuna", "sweep-unpruned": "optuna"}

rows = []  # (seed, search, wall, trials, pruned, epochs, best of completed, [(wall, val iou)])
for line in open(f"{T}/legs.tsv"):
    seed, tool, start, end = line.split()
    start, end, D = float(start), float(end), f"{T}/seed-{seed}"
    if tool == "optuna":
        summary = json.load(open(f"{D}/optuna.json"))
        epochs = [json.loads(l) for l in open(f"{D}/optuna.jsonl")]
        shift = summary["start"] - start  # its epochs' clock starts after imports and loading
        completed = set(summary["completed"])
        points = [(e["wall"] + shift, e["val_iou"]) for e in epochs if finite(e["val_iou"])]
        best = max((e["val_iou"] for e in epochs if e["trial"] in completed and finite(e["val_iou"])), default=nan)
        trials, pruned, n_epochs = summary["trials"], summary["pruned"], len(epochs)
    else:
        db = sqlite3.connect(f"file:{D}/{'pruned' if tool == 'sweep' else 'unpruned'}/sweep.db?mode=ro", uri=True)
        points = [(wall - start, v) for wall, v in db.execute(
            "SELECT wall, value FROM metrics WHERE split = 'val' AND name = 'iou' AND kind = 'finite'")]
        n_epochs, = db.execute("SELECT COUNT(*) FROM metrics WHERE split = 'val' AND name = 'iou'").fetchone()
        trials, pruned = db.execute("SELECT COUNT(*), COALESCE(SUM(status = 'pruned'), 0) FROM runs").fetchone()
        best, = db.execute("SELECT MAX(m.value) FROM metrics m JOIN runs r ON r.id = m.run "
                           "WHERE m.split = 'val' AND m.name = 'iou' AND r.status = 'completed'").fetchone()
        best = nan if best is None else best
    rows.append((seed, tool, end - start, trials, pruned, n_epochs, best, points))

tools = [t for t in LABEL if any(r[1] == t for r in rows)]
fmt = lambda v: f"{v:.4f}" if finite(v) else "none"
print("| seed | search | wall clock | trials | pruned | epochs trained | best val IoU (completed trials) |")
print("|--:|---|--:|--:|--:|--:|--:|")
for seed, tool, wall, trials, pruned, n_epochs, best, _ in rows:
    print(f"| {seed} | {LABEL[tool]} | {wall:.0f} s | {trials} | {pruned} | {n_epochs} | {fmt(best)} |")

def median(values):
    values = [v for v in values if finite(v)]
    return statistics.median(values) if values else nan

walls, bests = {}, {}
print()
print("| search | seeds | median wall clock | mean best val IoU | median best val IoU | total epochs |")
print("|---|--:|--:|--:|--:|--:|")
for tool in tools:
    mine = [r for r in rows if r[1] == tool]
    walls[tool], bests[tool] = median(r[2] for r in mine), median(r[6] for r in mine)
    done = [r[6] for r in mine if finite(r[6])]
    mean = statistics.fmean(done) if done else nan
    print(f"| {LABEL[tool]} | {len(mine)} | {walls[tool]:.0f} s | {fmt(mean)} | {fmt(bests[tool])} | {sum(r[5] for r in mine)} |")
print()
for tool in ("sweep", "sweep-unpruned"):
    if tool in walls and "optuna" in walls:
        print(f"{LABEL[tool]}: median wall clock / Optuna's = {walls[tool]:.0f} s / {walls['optuna']:.0f} s"
              f" = {walls[tool] / walls['optuna']:.2f}")
seeds = list(dict.fromkeys(r[0] for r in rows))
reach = [t for t in tools if OTHER[t] in bests]
if reach:
    print()
    print("Time to first reach the other's median best val IoU (best so far over every recorded epoch):")
    print()
    print("| search | target | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("|---|--:|" + "--:|" * len(seeds))
    for tool in reach:
        target, cells = bests[OTHER[tool]], []
        for s in seeds:
            mine = [r for r in rows if r[0] == s and r[1] == tool]
            hit = [wall for wall, v in mine[0][7] if finite(target) and v >= target] if mine else None
            cells.append("-" if hit is None else f"{min(hit):.0f} s" if hit else "never")
        print(f"| {LABEL[tool]} | {fmt(target)} ({LABEL[OTHER[tool]]}) | " + " | ".join(cells) + " |")
PY
}

if [ -n "${SUMMARIZE:-}" ]; then
  seeds_summary "$PY" "$SUMMARIZE"
  exit
fi

need_python "$PY" "torch, optuna, PIL, numpy" "torch optuna pillow numpy"
# SWEEP_BIN=path measures that binary instead of building this checkout's release binary.
BIN=$(sweep_bin)
T=$(mktemp -d)
if [ -n "${KEEP:-}" ]; then echo "results in $T"; else trap 'rm -rf "$T"' EXIT; fi
synth_cars "$BIN" "$T/cars"

# sweep_files DIR SEED: DIR/pruned.toml and DIR/unpruned.toml, sweeps/bayes.toml on the dataset
# with seed SEED (and PRUNER, if set), with and without its [early_terminate].
sweep_files() {
  sed -e "s|^source = \"synthetic\"|source = \"$T/cars\"|" -e '/^synthetic_count/d' -e "s/^seed = .*/seed = $2/" sweeps/bayes.toml > "$1/pruned.toml"
  if [ -n "${PRUNER:-}" ]; then
    awk -v pruner="$PRUNER" '/^\[early_terminate\]/ { print; print pruner; skip = 1; next } /^\[/ { skip = 0 } !skip' "$1/pruned.toml" > "$1/p.toml"
    mv "$1/p.toml" "$1/pruned.toml"
  fi
  awk '/^\[early_terminate\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' "$1/pruned.toml" > "$1/unpruned.toml"
}

now() { date +%s.%N; }
TRIALS=$(sed -n 's/^run_cap = \([0-9]*\).*/\1/p' sweeps/bayes.toml)
EPOCHS=$(sed -n 's/^epochs = \([0-9]*\).*/\1/p' sweeps/bayes.toml)
read -ra OPTUNA_EXTRA <<< "${OPTUNA_ARGS:-}"

# optuna_leg DIR SEED: the reference's search with sampler seed SEED, its epochs in
# DIR/optuna.jsonl, its summary in DIR/optuna.json.
optuna_leg() {
  (cd bench && "$PY" optuna_search.py --data "$T/cars" --out "$1/optuna.jsonl" --trials "$TRIALS" --epochs "$EPOCHS" \
    --pruner "${OPTUNA_PRUNER:-median}" --seed "$2" ${OPTUNA_EXTRA[@]+"${OPTUNA_EXTRA[@]}"} > "$1/optuna.json")
}

# sweep_leg DIR NAME: `sweep run` of DIR/NAME.toml into the tracker DIR/NAME, its log in DIR/NAME.log.
sweep_leg() {
  "$BIN" --runs-dir "$1/$2" run "$1/$2.toml" --workers 2 --plain --no-plot > "$1/$2.log"
}

if [ -n "${SEEDS:-}" ]; then
  : > "$T/legs.tsv"
  for seed in $SEEDS; do
    D="$T/seed-$seed"
    mkdir -p "$D"
    sweep_files "$D" "$seed"
    if [ -z "${NO_OPTUNA:-}" ]; then
      a=$(now); optuna_leg "$D" "$seed"; echo "$seed optuna $a $(now)" >> "$T/legs.tsv"
    fi
    a=$(now); sweep_leg "$D" pruned; echo "$seed sweep $a $(now)" >> "$T/legs.tsv"
    if [ -n "${UNPRUNED:-}" ]; then
      a=$(now); sweep_leg "$D" unpruned; echo "$seed sweep-unpruned $a $(now)" >> "$T/legs.tsv"
    fi
    echo "seed $seed: done" >&2
  done
  seeds_summary "$PY" "$T"
  exit
fi

SEED=${SEED:-$(sed -n 's/^seed = \([0-9]*\).*/\1/p' sweeps/bayes.toml)}
sweep_files "$T" "$SEED"
t0=$(now)
if [ -z "${NO_OPTUNA:-}" ]; then
  optuna_leg "$T" "$SEED"
fi
t1=$(now)
sweep_leg "$T" pruned
t2=$(now)
sweep_leg "$T" unpruned
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
