#!/bin/sh
# The fake training program of bench/program.sh: SWEEP_EPOCHS epochs of a learning curve of its
# one parameter, `--x=X`, printed as `sweep`'s protocol lines at once (val_loss = (x - 0.3)^2 + 1/e).
# As cheap as a program gets, so that what the benchmark measures is the sweep tool's cost.
x=0.5
for arg in "$@"; do
  case "$arg" in --x=*) x=${arg#--x=} ;; esac
done
awk -v x="$x" -v n="${SWEEP_EPOCHS:-3}" 'BEGIN { for (e = 1; e <= n; e++) printf "{\"epoch\": %d, \"val_loss\": %.9f}\n", e, (x - 0.3) ^ 2 + 1 / e }'
