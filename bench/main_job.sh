#!/usr/bin/env bash
# The README's main job side by side with PyTorch, in one run on one machine: `sweep run
# sweeps/hue.toml --workers 2` (four trials of 12 epochs, two at a time; charts included) and the
# same four trials in PyTorch (bench/hue_torch.py: two processes of one thread), both reading the
# same synthetic dataset from disk (generated first, outside both clocks). Prints each wall clock,
# the ratio, and each side's best validation mean IoU; then the same pair again, to show the
# spread (wall clocks on a shared machine drift).
#
# Usage: bench/main_job.sh [PYTHON]   (PYTHON needs `pip install torch pillow numpy`)
#        ROUNDS=n (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
"$PY" -c "import torch, PIL, numpy" 2>/dev/null || { echo "the reference needs: $PY -m pip install torch pillow numpy" >&2; exit 2; }
# SWEEP_BIN=path measures that binary instead of building this checkout's release binary.
if [ -z "${SWEEP_BIN:-}" ]; then cargo build --release --quiet; fi
BIN=$(realpath "${SWEEP_BIN:-target/release/sweep}")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# The dataset `source = "synthetic"` generates (400 images of 240x160, seed 0), on disk for both.
"$BIN" data synth --out "$T/cars" --count 400 --size 240x160 --seed 0 >/dev/null
sed -e "s|^source = \"synthetic\".*|source = \"$T/cars\"|" -e '/^synthetic_count/d' sweeps/hue.toml > "$T/hue.toml"

now() { date +%s.%N; }
echo "| round | sweep run (2 workers) | PyTorch (2 processes) | ratio | best val IoU, sweep | best val IoU, PyTorch |"
echo "|--:|--:|--:|--:|--:|--:|"
for round in $(seq "${ROUNDS:-2}"); do
  rm -rf "$T/runs"
  t0=$(now)
  "$BIN" --runs-dir "$T/runs" run "$T/hue.toml" --workers 2 --plain > "$T/sweep.log"
  t1=$(now)
  (cd bench && "$PY" hue_torch.py --data "$T/cars") > "$T/torch.jsonl"
  t2=$(now)
  ours=$("$PY" -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT MAX(value) FROM metrics WHERE split = 'val' AND name = 'iou'\").fetchone()[0])" "$T/runs/sweep.db")
  theirs=$(tail -1 "$T/torch.jsonl" | sed -n 's/.*"best": \([0-9.]*\).*/\1/p')
  awk -v r="$round" -v a="$t0" -v b="$t1" -v c="$t2" -v o="$ours" -v p="$theirs" \
    'BEGIN { printf "| %d | %.0f s | %.0f s | %.2fx | %.4f | %.4f |\n", r, b - a, c - b, (b - a) / (c - b), o, p }'
done
