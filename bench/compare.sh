#!/usr/bin/env bash
# The U-Net on our default CPU backend against the identical PyTorch model, side by side in one
# run: one training step and one inference forward at 128x128 (depth 5), base 16 and 32, batch 4
# and 8, and at the main job's shape (64x64, base 8, depth 4, batch 8); the same thread count,
# medians after warm-up. "burn's ops" is the same step without our kernels (`train::ops`);
# "PyTorch NHWC" is PyTorch with `channels_last` (what a user who tunes PyTorch on CPU picks).
# Then the peak RSS of a training process.
#
# Usage: bench/compare.sh [PYTHON]   (PYTHON defaults to python3; it needs `pip install torch`)
#        ROUNDS=n (default 1): each shape n times, ours and PyTorch alternately; the table gives
#        the median times and the median of the per-round ratios (one run of each swings by 20%
#        or more on a shared VM). burn's ops are measured in the first round only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
THREADS=${THREADS:-2}
"$PY" -c "import torch" 2>/dev/null || { echo "PyTorch is needed for the reference: $PY -m pip install torch" >&2; exit 2; }
cargo bench --bench unet --no-run >/dev/null 2>&1
BIN=$(cargo bench --bench unet --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p' | tail -1)
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
echo "## U-Net step vs PyTorch ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $THREADS threads, ${ROUNDS:-1} round(s), $(date -u +%F))"
echo
echo "| size | depth | base | batch | train ours | train, burn's ops | train PyTorch | ratio | train PyTorch NHWC | ratio | inference ours | inference PyTorch | ratio | inference PyTorch NHWC | ratio |"
echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
for shape in "128 5 16 4" "128 5 16 8" "128 5 32 4" "128 5 32 8" "64 4 8 8"; do
  read -r size depth base batch <<<"$shape"
  args=(--size "$size" --depth "$depth" --base "$base" --batch "$batch" --threads "$THREADS")
  burn=$("$BIN" "${args[@]}" --burn-kernels 2>/dev/null | tail -1)
  tb=$(echo "$burn" | field train_ms)
  rows=""
  for _ in $(seq "${ROUNDS:-1}"); do
    ours=$("$BIN" "${args[@]}" 2>/dev/null | tail -1)
    ref=$("$PY" bench/unet_torch.py "${args[@]}" 2>/dev/null | tail -1)
    nhwc=$("$PY" bench/unet_torch.py "${args[@]}" --channels-last 2>/dev/null | tail -1)
    to=$(echo "$ours" | field train_ms); tr=$(echo "$ref" | field train_ms); tn=$(echo "$nhwc" | field train_ms)
    io=$(echo "$ours" | field infer_ms); ir=$(echo "$ref" | field infer_ms); in=$(echo "$nhwc" | field infer_ms)
    rows+="$to $tr $(echo "$to / $tr" | bc -l) $tn $(echo "$to / $tn" | bc -l) $io $ir $(echo "$io / $ir" | bc -l) $in $(echo "$io / $in" | bc -l)"$'\n'
  done
  col() { echo -n "$rows" | awk -v c="$1" '{print $c}' | median; }
  printf "| %s | %s | %s | %s | %.0f ms | %.0f ms | %.0f ms | %.2fx | %.0f ms | %.2fx | %.1f ms | %.1f ms | %.2fx | %.1f ms | %.2fx |\n" "$size" "$depth" "$base" "$batch" \
    "$(col 1)" "$tb" "$(col 2)" "$(col 3)" "$(col 4)" "$(col 5)" "$(col 6)" "$(col 7)" "$(col 8)" "$(col 9)" "$(col 10)"
done
echo
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
ours_rss=$(rss "$BIN" --base 32 --batch 4 --threads "$THREADS" --steps 4)
ref_rss=$(rss "$PY" bench/unet_torch.py --base 32 --batch 4 --threads "$THREADS" --steps 4)
echo "| peak RSS, training process, base 32, batch 4, 128x128 | ours | PyTorch |"
echo "|---|--:|--:|"
printf "| /usr/bin/time -f %%M | %.0f MB | %.0f MB |\n" "$(echo "$ours_rss / 1024" | bc -l)" "$(echo "$ref_rss / 1024" | bc -l)"
