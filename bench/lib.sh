# What bench/main_job.sh and bench/search.sh share; sourced from the repository root.

# need_python PYTHON MODULES PACKAGES: exits 2, naming the pip command, unless PYTHON imports MODULES.
need_python() {
  "$1" -c "import $2" 2>/dev/null || { echo "the reference needs: $1 -m pip install $3" >&2; exit 2; }
}

# sweep_bin: the binary to measure, SWEEP_BIN if set, else this checkout's release binary (built).
sweep_bin() {
  if [ -z "${SWEEP_BIN:-}" ]; then cargo build --release --quiet || return 1; fi
  realpath "${SWEEP_BIN:-target/release/sweep}"
}

# synth_cars BIN DIR: the dataset `source = "synthetic"` generates by default (400 images of
# 240x160, seed 0), written to DIR so that `sweep` and the PyTorch reference read the same files.
synth_cars() {
  "$1" data synth --out "$2" --count 400 --size 240x160 --seed 0 >/dev/null
}
