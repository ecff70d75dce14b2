#!/usr/bin/env bash
# What `data.eval_full_resolution = true` costs: one trial trained with and without it, on the
# embedded set's size (400 images of 240x160) and on Carvana's (1918x1280), both at the main job's
# model (image_size 128, base 8, depth 4, 2 threads). Prints, for each, the mean epoch (training
# and validation) over epochs 2.. and the trial's wall clock (which also holds the decoding of the
# validation masks at full size, once per trial), with and without, and the ratio.
#
# Usage: bench/full_resolution.sh     COUNT_LARGE=n (default 100 Carvana-sized images), EPOCHS=n (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
BIN=$(sweep_bin)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
EPOCHS=${EPOCHS:-4}

# trial_cost DB TRIAL: "<mean epoch seconds over epochs 2..> <wall seconds>"
trial_cost() {
  python3 - "$1" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
epochs = [v for (v,) in db.execute("SELECT value FROM metrics WHERE run = ? AND split = 'train' AND name = 'seconds' AND epoch > 1", (sys.argv[2],))]
started, finished = db.execute("SELECT started, finished FROM runs WHERE id = ?", (sys.argv[2],)).fetchone()
print(f"{sum(epochs) / len(epochs):.3f} {finished - started:.3f}")
PY
}

echo "| images | validation images | epoch, off | epoch, on | ratio | trial, off | trial, on | ratio |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|"
for set in "400 240x160" "${COUNT_LARGE:-100} 1918x1280"; do
  read -r count size <<<"$set"
  "$BIN" data synth --out "$T/cars-$size" --count "$count" --size "$size" --seed 0 >/dev/null
  for full in false true; do
    cat > "$T/$full.toml" <<TOML
name = "full-$full"
method = "grid"
[data]
source = "$T/cars-$size"
image_size = 128
eval_full_resolution = $full
[model]
base_filters = 8
depth = 4
[train]
epochs = $EPOCHS
batch_size = 8
[parameters]
"train.seed" = { values = [0] }
TOML
    rm -rf "$T/runs"
    "$BIN" --runs-dir "$T/runs" run "$T/$full.toml" --workers 1 --threads 2 --plain --no-plot >/dev/null
    read -r epoch wall < <(trial_cost "$T/runs/sweep.db" "full-$full-1")
    eval "epoch_$full=$epoch wall_$full=$wall"
  done
  awk -v s="$size" -v n="$count" -v e0="$epoch_false" -v e1="$epoch_true" -v w0="$wall_false" -v w1="$wall_true" \
    'BEGIN { printf "| %d of %s | %d | %.2f s | %.2f s | %.2fx | %.1f s | %.1f s | %.2fx |\n", n, s, int(n * 0.2 + 0.5), e0, e1, e1 / e0, w0, w1, w1 / w0 }'
done
