#!/usr/bin/env bash
# The GPU run of issue 32 in one script, for a machine with an NVIDIA GPU, CUDA PyTorch and no
# Rust toolchain (the binaries are built elsewhere and carried):
#   1. the errors for a missing Vulkan loader and a missing driver, then the GPU found;
#   2. the README's main job (sweeps/hue.toml) on the GPU with two workers, its best trial
#      re-evaluated there on the GPU and on the CPU;
#      sweeps/quick.toml too (tests/fixtures/gpu-quick holds what it wrote);
#   3. one trial at the tutorial's size (bench/gpu_tutorial.toml: 256x256, base 32, depth 5,
#      batch 8) for three epochs;
#   4. one training step and one inference forward at bench/compare.sh's shapes and at 256x256,
#      ours (Vulkan) against the identical PyTorch model on CUDA (its defaults, TF32 convolutions,
#      and full float32 as burn computes), then a kernel profile of ours at 256x256.
#
# Build here, then carry BIN and .gl (the Vulkan loader's packages, see README "GPUs"):
#   cargo build --release --features vulkan --bin sweep --bench unet
#   mkdir -p .gpu && strip -o /tmp/sweep target/release/sweep && xz -T2 -c /tmp/sweep >.gpu/sweep.xz
#   strip -o /tmp/unet "$(ls -t target/release/deps/unet-* | grep -v '\.d$' | head -1)" && xz -T2 -c /tmp/unet >.gpu/unet.xz
# (about 22 and 19 MB: with .gl and the checkout that fits the 64 MiB a GPU call carries; gzip does not)
# Usage (on the GPU machine, from the repository root): bench/gpu.sh .gpu
# It takes about 11 minutes on an H200, more than one 10-minute call: the first epoch of each new
# process and every new shape of step 4 pays CubeCL's autotune and shader compiles. Run steps 1-3
# and step 4 in two calls where calls are capped (2026-12-04: the last two shapes and the profile
# ran in a second call).
# Writes gpu.log, timings.md, cubecl-profile.log and runs.tar.gz (the tracker and the main job's
# best trial directory, to reload here: see BENCHMARKS.md) to $OUT (default /tmp/gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1
BIN=/tmp/gpu-bin
RUNS=/tmp/gpu-runs
mkdir -p "$BIN"
unxz() { python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$1" "$2"; }
for b in sweep unet; do
  if [ -f "$1/$b.xz" ]; then unxz "$1/$b.xz" "$BIN/$b"; elif [ -f "$1/$b.gz" ]; then gunzip -c "$1/$b.gz" >"$BIN/$b"; else cp "$1/$b" "$BIN/$b"; fi
  chmod +x "$BIN/$b"
done
SWEEP="$BIN/sweep"
step() { echo; echo "=== $* ($(date -u +%T))"; }
secs() { python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name(0))"
uname -r; nproc

step "1a. --device vulkan without the Vulkan loader"
ldconfig -p | grep libvulkan || echo "(no libvulkan here)"
timeout 60 "$SWEEP" --runs-dir /tmp/no-loader run sweeps/hue.toml --device vulkan
echo "exit status $?"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d 2>&1
# NVIDIA's driver is mounted under /usr/local/nvidia here, where the loader does not look.
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$ICD" ] && [ ! -f /usr/share/vulkan/icd.d/nvidia_icd.json ] && [ ! -f /etc/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=$ICD __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  echo "VK_DRIVER_FILES=$VK_DRIVER_FILES"
fi

step "1b. --device vulkan with the loader but no driver"
VK_DRIVER_FILES=/nonexistent/icd.json VK_ICD_FILENAMES=/nonexistent/icd.json timeout 60 "$SWEEP" --runs-dir /tmp/no-driver run sweeps/hue.toml --device vulkan
echo "exit status $?"

step "1c. --device vulkan:7 (no such GPU)"
timeout 60 "$SWEEP" --runs-dir /tmp/no-gpu run sweeps/hue.toml --device vulkan:7
echo "exit status $?"

step "2. the main job on the GPU: sweep run sweeps/hue.toml --device vulkan --workers 2"
t=$(date +%s.%N)
timeout 240 "$SWEEP" --runs-dir "$RUNS" run sweeps/hue.toml --device vulkan --workers 2
echo "exit status $?, $(secs "$t") s"
"$SWEEP" --runs-dir "$RUNS" ls --sort val_iou
BEST=$("$SWEEP" --runs-dir "$RUNS" best --sweep hue --metric iou --json | python3 -c "import json, sys; print(json.load(sys.stdin)['run'])")
echo "best: $BEST"
"$SWEEP" --runs-dir "$RUNS" show "$BEST"
for d in vulkan cpu; do
  echo "--- sweep best --sweep hue --metric iou --eval --json --device $d"
  timeout 120 "$SWEEP" --runs-dir "$RUNS" best --sweep hue --metric iou --eval --json --device "$d" | tee "$OUT/best-eval-$d.json" | grep -A5 '"eval"'
done

step "2b. sweeps/quick.toml on the GPU (its checkpoints become the CPU-reload test's fixture)"
timeout 120 "$SWEEP" --runs-dir "$RUNS" run sweeps/quick.toml --device vulkan
echo "exit status $?"
"$SWEEP" --runs-dir "$RUNS" ls --sweep quick

step "3. one trial at the tutorial's size: bench/gpu_tutorial.toml"
t=$(date +%s.%N)
timeout 200 "$SWEEP" --runs-dir "$RUNS" run bench/gpu_tutorial.toml --device vulkan
echo "exit status $?, $(secs "$t") s"
"$SWEEP" --runs-dir "$RUNS" show tutorial256-1
timeout 120 "$SWEEP" --runs-dir "$RUNS" eval tutorial256-1 --device vulkan
tar czf "$OUT/runs.tar.gz" -C "$RUNS" $(cd "$RUNS" && ls -d sweep.db* "hue/$BEST" quick)
ls -l "$OUT/runs.tar.gz"

step "4. a training step and an inference forward, ours (Vulkan) against PyTorch (CUDA)"
field() { python3 -c "import json, sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])" 2>/dev/null || echo nan; }
ratio() { python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(f'{a / b:.2f}x')" "$1" "$2" 2>/dev/null || echo "-"; }
{
  echo "| size | depth | base | batch | train ours | train PyTorch (TF32) | ratio | train PyTorch (fp32) | ratio | inference ours | inference PyTorch (TF32) | ratio | inference PyTorch (fp32) | ratio |"
  echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
} >"$OUT/timings.md"
for shape in "128 5 16 4" "128 5 16 8" "128 5 32 4" "128 5 32 8" "64 4 8 8" "256 5 32 8"; do
  read -r size depth base batch <<<"$shape"
  args=(--size "$size" --depth "$depth" --base "$base" --batch "$batch" --warmup 10 --steps 30)
  ours=$(timeout 150 "$BIN/unet" "${args[@]}" --device vulkan 2>"$OUT/unet-err.log" | tail -1)
  [ -n "$ours" ] || tail -5 "$OUT/unet-err.log"
  tf32=$(timeout 90 python3 bench/unet_torch.py "${args[@]}" --device cuda | tail -1)
  fp32=$(timeout 90 python3 bench/unet_torch.py "${args[@]}" --device cuda --no-tf32 | tail -1)
  echo "$shape: ours $ours | torch $tf32 | torch fp32 $fp32"
  to=$(echo "$ours" | field train_ms); io=$(echo "$ours" | field infer_ms)
  tt=$(echo "$tf32" | field train_ms); it=$(echo "$tf32" | field infer_ms)
  tf=$(echo "$fp32" | field train_ms); if_=$(echo "$fp32" | field infer_ms)
  printf "| %s | %s | %s | %s | %.2f ms | %.2f ms | %s | %.2f ms | %s | %.2f ms | %.2f ms | %s | %.2f ms | %s |\n" \
    "$size" "$depth" "$base" "$batch" "$to" "$tt" "$(ratio "$to" "$tt")" "$tf" "$(ratio "$to" "$tf")" \
    "$io" "$it" "$(ratio "$io" "$it")" "$if_" "$(ratio "$io" "$if_")" >>"$OUT/timings.md"
done
cat "$OUT/timings.md"

step "4b. where our step's time goes at 256x256 (CubeCL's kernel profile)"
mkdir -p /tmp/profile
printf '[profiling.logger]\nlevel = "basic"\nfile = "%s"\nappend = false\n' "$OUT/cubecl-profile.log" >/tmp/profile/cubecl.toml
(cd /tmp/profile && timeout 150 "$BIN/unet" --size 256 --depth 5 --base 32 --batch 8 --warmup 3 --steps 3 --device vulkan | tail -1)
ls -l "$OUT"
step "done"
