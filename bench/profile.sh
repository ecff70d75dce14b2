#!/usr/bin/env bash
# Where a U-Net training step's time goes on the CPU (issue 31: profile first): `perf record`
# with DWARF call stacks over `cargo bench --bench unet` at one shape, then each sample charged to
# the first op on its stack (ours in `train::ops`, or burn's), with the share of the samples whose
# leaf is the GEMM's micro-kernels or a memory copy or fill. The step includes the forward, the
# loss, the backward and the Adam update, as `bench/compare.sh` times it.
#
# Usage: bench/profile.sh [SIZE DEPTH BASE BATCH THREADS]   (default: the main job's shape,
#        64 4 8 8 1); STEPS=30 FREQ=1000. Needs `perf` (linux-perf / linux-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-64} DEPTH=${2:-4} BASE=${3:-8} BATCH=${4:-8} THREADS=${5:-1}
STEPS=${STEPS:-30} FREQ=${FREQ:-1000}
command -v perf >/dev/null || { echo "bench/profile.sh needs perf" >&2; exit 2; }
cargo bench --bench unet --no-run >/dev/null 2>&1
BIN=$(cargo bench --bench unet --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p' | tail -1)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
perf record -q -F "$FREQ" --call-graph dwarf,16384 -o "$T/perf.data" \
  "$BIN" --size "$SIZE" --depth "$DEPTH" --base "$BASE" --batch "$BATCH" --threads "$THREADS" --steps "$STEPS" >"$T/step.json" 2>/dev/null
perf script -i "$T/perf.data" 2>/dev/null >"$T/stacks.txt"
echo "# ${SIZE}x${SIZE}, depth $DEPTH, base $BASE, batch $BATCH, $THREADS thread(s): $(tail -1 "$T/step.json")"
python3 - "$T/stacks.txt" <<'PYEOF'
import collections, re, sys

# The first frame from the leaf that names one of these is the op a sample is charged to.
OPS = [
    (r"sweep::train::ops::conv::im2col", "ours: im2col"),
    (r"sweep::train::ops::(pool|max_pool)", "ours: max pool"),
    (r"sweep::train::ops::(upconv|conv_transpose2x2)|UpBackward", "ours: transposed conv"),
    (r"sweep::train::ops::winograd", "ours: Winograd convolution (wide layers)"),
    (r"sweep::train::ops::conv::(weight_grad|add_dots|\{impl#\d+\}::block_grad)", "ours: conv weight gradient"),
    (r"sweep::train::ops::conv::input_grad", "ours: conv input gradient (its own part)"),
    (r"sweep::train::ops::conv::bias_grad", "ours: conv bias gradient"),
    (r"sweep::train::ops::conv::(forward|direct_product|\{impl#\d+\}::(forward|run))", "ours: conv forward (and the input gradient's GEMM)"),
    (r"sweep::train::ops::norm", "ours: batch norm + ReLU"),
    (r"max_pool", "burn: max pool"),
    (r"conv_transpose", "burn: transposed conv"),
    (r"burn_flex::ops::conv::conv", "burn: conv (not on our path)"),
    (r"burn_flex::ops::(cat|slice)", "burn: concatenation, slices"),
    (r"burn_flex::ops::binary|burn_flex::ops::unary|scalar_op", "burn: element-wise"),
    (r"burn_autodiff", "burn: autodiff bookkeeping"),
    (r"burn_flex", "burn: other"),
]
ops, leaves, others, total = collections.Counter(), collections.Counter(), collections.Counter(), 0
for sample in open(sys.argv[1]).read().split("\n\n"):
    frames = [re.sub(r"^[0-9a-f]+ ", "", l.strip()) for l in sample.strip().split("\n")[1:] if l.strip()]
    if not frames:
        continue
    total += 1
    op = next((name for f in frames for pat, name in OPS if re.search(pat, f)), "other")
    ops[op] += 1
    if op == "other":
        # What the unattributed samples are: their leaf, and the nearest frame of ours or burn's.
        owner = next((f for f in frames if re.search(r"sweep::|burn_", f)), "(no sweep or burn frame)")
        others[(re.sub(r"\+0x[0-9a-f]+.*", "", frames[0])[:70], re.sub(r"\+0x[0-9a-f]+.*", "", owner)[:90])] += 1
    leaf = frames[0]
    leaves["GEMM micro-kernels" if "gemm" in leaf else "memory copy" if re.search("memmove|memcpy", leaf) else "memory fill" if "memset" in leaf else "the rest"] += 1
print(f"\n{total} samples\n\n| charged to | share of the step |\n|---|--:|")
for name, n in ops.most_common():
    print(f"| {name} | {100 * n / total:.1f}% |")
print("\n| \"other\": leaf | nearest sweep or burn frame | share of the step |\n|---|---|--:|")
for (leaf, owner), n in others.most_common(12):
    print(f"| `{leaf}` | `{owner}` | {100 * n / total:.1f}% |")
print("\n| leaf | share of the step |\n|---|--:|")
for name, n in leaves.most_common():
    print(f"| {name} | {100 * n / total:.1f}% |")
PYEOF
