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
source bench/lib.sh
PY=${1:-python3}
need_python "$PY" "torch, PIL, numpy" "torch pillow numpy"
# SWEEP_BIN=path measures that binary instead of building this checkout's release binary.
BIN=$(sweep_bin)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
synth_cars "$BIN" "$T/cars"
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
