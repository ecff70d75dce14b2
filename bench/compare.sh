#!/usr/bin/env bash
# The U-Net on our default CPU backend against the identical PyTorch model, side by side in one
# run: one training step and one inference forward at 128x128, base 16 and 32, batch 4 and 8,
# the same thread count, medians after warm-up. Then the peak RSS of a training process.
#
# Usage: bench/compare.sh [PYTHON]   (PYTHON defaults to python3; it needs `pip install torch`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
THREADS=${THREADS:-2}
"$PY" -c "import torch" 2>/dev/null || { echo "PyTorch is needed for the reference: $PY -m pip install torch" >&2; exit 2; }
cargo bench --bench unet --no-run >/dev/null 2>&1
BIN=$(cargo bench --bench unet --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p' | tail -1)
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
echo "## U-Net step vs PyTorch ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $THREADS threads, $(date -u +%F))"
echo
echo "| base | batch | train ours | train PyTorch | ratio | inference ours | inference PyTorch | ratio |"
echo "|--:|--:|--:|--:|--:|--:|--:|--:|"
for base in 16 32; do
  for batch in 4 8; do
    ours=$("$BIN" --base "$base" --batch "$batch" --threads "$THREADS" 2>/dev/null | tail -1)
    ref=$("$PY" bench/unet_torch.py --base "$base" --batch "$batch" --threads "$THREADS" 2>/dev/null | tail -1)
    to=$(echo "$ours" | field train_ms); tr=$(echo "$ref" | field train_ms)
    io=$(echo "$ours" | field infer_ms); ir=$(echo "$ref" | field infer_ms)
    printf "| %s | %s | %.0f ms | %.0f ms | %.2fx | %.0f ms | %.0f ms | %.2fx |\n" "$base" "$batch" "$to" "$tr" "$(echo "$to / $tr" | bc -l)" "$io" "$ir" "$(echo "$io / $ir" | bc -l)"
  done
done
echo
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
ours_rss=$(rss "$BIN" --base 32 --batch 4 --threads "$THREADS" --steps 4)
ref_rss=$(rss "$PY" bench/unet_torch.py --base 32 --batch 4 --threads "$THREADS" --steps 4)
echo "| peak RSS, training process, base 32, batch 4, 128x128 | ours | PyTorch |"
echo "|---|--:|--:|"
printf "| /usr/bin/time -f %%M | %.0f MB | %.0f MB |\n" "$(echo "$ours_rss / 1024" | bc -l)" "$(echo "$ref_rss / 1024" | bc -l)"
