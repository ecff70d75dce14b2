#!/usr/bin/env bash
# Issue 28's benchmark: what sweeping a user's own program costs per trial, and how the tracker
# holds up at 10,000 trials, against Optuna 5 on its SQLite storage on the same machine.
#
# 1. Overhead: TRIALS (1000) trials of bench/fake_program.sh (3 epochs, printed at once), random
#    search with the median pruner, one worker, on SQLite: `sweep run` against Optuna's
#    `study.optimize` over the same subprocess (bench/program_optuna.py), and the program alone
#    run as many times in a shell loop. Overhead per trial = (wall - program alone) / trials.
# 2. Scale: SCALE (10000) trials of the same program with two workers, then the time of
#    `sweep ls`, `best`, `status`, `importance` (process start to exit), the dashboard's sweep
#    page (server time, by curl, and a headless Chromium's load of it by its Navigation Timing,
#    bench/browser_load.py); the same operations on
#    Optuna's study (trials_dataframe, best_trial, get_param_importances, a TPE ask, and
#    optuna-dashboard's study API where it is installed).
#
# TPE's ask over a 10,000-trial history is `cargo bench --bench store` (the library, no process).
#
# Usage: bench/program.sh [PYTHON]   (PYTHON needs optuna, pandas, scikit-learn, and optionally
#        optuna-dashboard; env: TRIALS, SCALE, SKIP_OVERHEAD=1, SKIP_SCALE=1, SKIP_OPTUNA=1)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
PY="${1:-python3}"
need_python "$PY" "optuna, pandas, sklearn" "optuna pandas scikit-learn"
TRIALS="${TRIALS:-1000}"
SCALE="${SCALE:-10000}"
bin=$(sweep_bin)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

sweep_file() { # NAME METHOD RUN_CAP [EXTRA]
  cat >"$work/$1.toml" <<TOML
name = "$1"
method = "$2"
run_cap = $3
${4:-}
[program]
command = ["sh", "$PWD/bench/fake_program.sh", "\${args}"]
[train]
epochs = 3
[metric]
name = "val_loss"
goal = "minimize"
[parameters]
x = { distribution = "uniform", min = 0.0, max = 1.0 }
y = { distribution = "uniform", min = 0.0, max = 1.0 }
[early_terminate]
type = "median"
TOML
}

echo "# machine: $(nproc) cores, $(uname -r); $(date -u +%F); sweep $("$bin" --version); optuna $("$PY" -c 'import optuna; print(optuna.__version__)')"

# 1. Overhead per trial.
if [ "${SKIP_OVERHEAD:-}" != 1 ]; then
t0=$(now)
for _ in $(seq "$TRIALS"); do SWEEP_EPOCHS=3 sh bench/fake_program.sh --x=0.5 >/dev/null; done
alone=$(secs "$t0" "$(now)")
sweep_file overhead random "$TRIALS"
t0=$(now)
"$bin" --runs-dir "$work/runs" --store "$work/overhead.db" run "$work/overhead.toml" --workers 1 --no-plot --plain >/dev/null 2>"$work/overhead.log"
ours=$(secs "$t0" "$(now)")
theirs=$("$PY" bench/program_optuna.py --db "$work/optuna.db" --trials "$TRIALS" | "$PY" -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["wall"])')
awk -v n="$TRIALS" -v a="$alone" -v s="$ours" -v o="$theirs" 'BEGIN {
  printf "\n## overhead: %d trials of 3 epochs, random search, median pruner, 1 worker, SQLite\n", n
  printf "| | wall (s) | per trial (ms) | overhead per trial (ms) |\n|---|--:|--:|--:|\n"
  printf "| the program alone, %d times | %.2f | %.2f | - |\n", n, a, 1000 * a / n
  printf "| sweep run | %.2f | %.2f | %.2f |\n", s, 1000 * s / n, 1000 * (s - a) / n
  printf "| Optuna study.optimize | %.2f | %.2f | %.2f |\n", o, 1000 * o / n, 1000 * (o - a) / n
  printf "sweep / Optuna overhead: %.2fx\n", (s - a) / (o - a)
}'
fi

[ "${SKIP_SCALE:-}" = 1 ] && exit 0

# 2. Scale.
sweep_file scale random "$SCALE"
store="$work/scale.db"
t0=$(now)
"$bin" --runs-dir "$work/runs" --store "$store" run "$work/scale.toml" --workers 2 --no-plot --plain >/dev/null 2>"$work/scale.log"
echo -e "\n## scale: $SCALE trials, 2 workers: sweep run took $(secs "$t0" "$(now)") s"
median5() { # COMMAND...: the median of 5 runs' wall clock, in ms
  local times=()
  for _ in 1 2 3 4 5; do local a; a=$(now); "$@" >/dev/null 2>&1; times+=("$(secs "$a" "$(now)")"); done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 3p | awk '{ printf "%.0f", 1000 * $1 }'
}
s=(--runs-dir "$work/runs" --store "$store")
echo "| operation at $SCALE trials | sweep (ms) |"
echo "|---|--:|"
echo "| ls | $(median5 "$bin" "${s[@]}" ls) |"
echo "| best | $(median5 "$bin" "${s[@]}" best) |"
echo "| status | $(median5 "$bin" "${s[@]}" status) |"
echo "| importance | $(median5 "$bin" "${s[@]}" importance scale) |"
ui() { # starts the dashboard anew (nothing worked out yet) on $port
  [ -n "${ui_pid:-}" ] && kill "$ui_pid" 2>/dev/null && wait "$ui_pid" 2>/dev/null || true
  port=$((20000 + RANDOM % 20000))
  "$bin" "${s[@]}" ui --port "$port" >/dev/null 2>&1 &
  ui_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
}
ui
# The first page over these trials starts importance beside it; later pages find it kept.
t0=$(now); curl -sf "http://127.0.0.1:$port/sweeps/scale" >/dev/null; first=$(secs "$t0" "$(now)")
echo "| dashboard sweep page, server (curl): first page / later pages (median of 5) | $(awk -v s="$first" 'BEGIN { printf "%.0f", 1000 * s }') / $(median5 curl -sf "http://127.0.0.1:$port/sweeps/scale") |"
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  # Navigation Timing's load event (server, transfer, parsing, styles, scripts) in headless
  # Chromium, and when the importance part that the page may fetch after it is shown is in.
  # On a dashboard started anew: the first visit is the first page over these trials
  # (importance worked out beside it and fetched); later visits find importance kept, inline.
  ui
  python3 bench/browser_load.py "http://127.0.0.1:$port/sweeps/scale" --visits 6 | python3 -c '
import json, statistics, sys
v = json.load(sys.stdin)["visits"]
print("| dashboard sweep page in headless Chromium, first visit: load event / importance in | %.0f / %.0f |" % (v[0]["load_ms"], v[0]["deferred_ms"]))
print("| the same, later visits (median of %d): load event / importance in | %.0f / %.0f |" % (len(v) - 1, statistics.median(x["load_ms"] for x in v[1:]), statistics.median(x["deferred_ms"] for x in v[1:])))
'
fi
kill "$ui_pid" 2>/dev/null || true
[ "${SKIP_OPTUNA:-}" = 1 ] && exit 0

"$PY" bench/program_optuna.py --db "$work/optuna_scale.db" --trials "$SCALE" --time-ops | "$PY" -c '
import json, sys
r = json.load(sys.stdin)
print("\nOptuna %s, %d trials: optimize took %.1f s" % (r["version"], r["trials"], r["wall"]))
print("| operation | Optuna (ms) |\n|---|--:|")
for k, name in [("ls_s", "trials_dataframe()"), ("best_s", "load_study().best_trial"), ("importance_s", "get_param_importances (fANOVA)"), ("tpe_ask_s", "TPE ask + tell"), ("dashboard_study_api_s", "optuna-dashboard GET /api/studies/ID (server)")]:
    if k in r:
        print("| %s | %.0f |" % (name, 1000 * r[k]))
'
