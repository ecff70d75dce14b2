#!/usr/bin/env bash
# sweeps/pareto.toml with and without pruning (issue 26): for each of SEEDS seeds, the sweep as
# shipped (multi-objective TPE, ASHA judging by Pareto rank) and the same file without
# [early_terminate]; for each pair, the epochs trained and the hypervolume of the Pareto front
# (val_iou up, infer_ms down) against the same reference (each objective's worst value over both
# fronts pushed 10% of its spread past it). Prints one row per seed and the ratios.
#
# Usage: bench/pareto.sh        SEEDS="1 2 3" (default), WORKERS=2
#        PAIR="unpruned unpruned" compares the unpruned sweep with itself (same file, same seed):
#        the spread of its ratios is the benchmark's own noise floor (a measured infer_ms feeds the
#        search, so two runs of one file differ); PAIR="pruned pruned" likewise.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bin=$(sweep_bin)
SEEDS=${SEEDS:-1 2 3}
WORKERS=${WORKERS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "# machine: $(nproc) cores, $(uname -r); $(date -u +%F); $("$bin" --version)"
read -r first second <<<"${PAIR:-pruned unpruned}"
for mode in "$first" "$second"; do
  case $mode in pruned | unpruned) ;; *) echo "PAIR takes two of pruned, unpruned; got '$mode'" >&2; exit 2 ;; esac
done
for seed in $SEEDS; do
  for side in a b; do
    mode=$first; [ "$side" = b ] && mode=$second
    name="p${seed}_$side"
    sed -e "s/^name = \"pareto\"/name = \"$name\"/" -e "s/^seed = .*/seed = $seed/" sweeps/pareto.toml >"$work/$name.toml"
    if [ "$mode" = unpruned ]; then
      # Drops the [early_terminate] table (up to the next table).
      awk '/^\[early_terminate\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' "$work/$name.toml" >"$work/$name.tmp" && mv "$work/$name.tmp" "$work/$name.toml"
    fi
    start=$(date +%s.%N)
    "$bin" --runs-dir "$work/runs" run "$work/$name.toml" --workers "$WORKERS" --plain --no-plot >/dev/null 2>"$work/$name.log" || true
    end=$(date +%s.%N)
    "$bin" --runs-dir "$work/runs" ls --sweep "$name" --json >"$work/$name.trials.json"
    "$bin" --runs-dir "$work/runs" best --sweep "$name" --json >"$work/$name.front.json" || true
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f\n", b - a }' >"$work/$name.seconds"
  done
done
python3 - "$work" "$first" "$second" $SEEDS <<'PYEOF'
import json, sys
sys.path.insert(0, "bench")
from hypervolume import hypervolume as shared_hypervolume
work, first, second, seeds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def hypervolume(points, ref):
    # val_iou maximised (negated), infer_ms minimised.
    return shared_hypervolume([(-iou, ms) for iou, ms in points], (-ref[0], ref[1]))

def load(name):
    trials = json.load(open(f"{work}/{name}.trials.json"))
    epochs = sum(t["metrics"].get("val_iou", {}).get("last_epoch", 0) for t in trials)
    front = json.load(open(f"{work}/{name}.front.json")).get("front", [])
    points = [(m["values"]["val_iou"], m["values"]["infer_ms"]) for m in front]
    return epochs, points, float(open(f"{work}/{name}.seconds").read())

pair = f"{first} / {second}"
print(f"| seed | epochs trained, {pair} | front size | hypervolume, {pair} | wall s |")
print("|--:|--:|--:|--:|--:|")
epoch_ratios, hv_ratios = [], []
for seed in seeds:
    (ep, fp, sp), (eu, fu, su) = load(f"p{seed}_a"), load(f"p{seed}_b")
    both = fp + fu
    ious, mss = [p[0] for p in both], [p[1] for p in both]
    ref = (min(ious) - 0.1 * (max(ious) - min(ious) or 1), max(mss) + 0.1 * (max(mss) - min(mss) or 1))
    hp, hu = hypervolume(fp, ref), hypervolume(fu, ref)
    epoch_ratios.append(ep / eu)
    hv_ratios.append(hp / hu)
    print(f"| {seed} | {ep} / {eu} = {ep / eu:.2f} | {len(fp)} / {len(fu)} | {hp:.4f} / {hu:.4f} = {hp / hu:.3f} | {sp:.0f} / {su:.0f} |")
# The issue's targets are for pruned against unpruned; a sweep against itself shows the noise.
targets = (first, second) == ("pruned", "unpruned")
print(f"\nepochs, {first} over {second}: {', '.join(f'{r:.2f}' for r in epoch_ratios)}" + (" (target: at most 0.50)" if targets else ""))
print(f"hypervolume, {first} over {second}: {', '.join(f'{r:.3f}' for r in hv_ratios)}" + (" (target: at least 0.98)" if targets else ""))
PYEOF
