#!/usr/bin/env bash
# Installs what the tests need beyond cargo, on Debian or Ubuntu; does nothing when it is all
# there (so it can run before every `cargo test`). Uses sudo only when not root.
# - PostgreSQL's server binaries (the cluster tests start a private server with initdb/pg_ctl);
# - SLURM (the cluster tests start slurmctld and slurmd with a one-node config, auth/none);
# - unshare, runuser and mount from util-linux (the disk-fault tests mount a private tmpfs; as
#   root, PostgreSQL is started as the postgres user);
# - Chromium and its WebDriver (Debian's `chromium`, `chromium-driver`): the browser test of
#   `sweep ui` drives it headless (tests/ui.rs; SWEEP_CHROMIUM, SWEEP_CHROMEDRIVER name others);
# - Python's venv module, for the test-only virtual environment of MLflow and TensorBoard that
#   tests/python-deps.sh makes (the export tests read our output back with those tools).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm)
{ command -v unshare && command -v runuser; } >/dev/null 2>&1 || need+=(util-linux)
command -v mount >/dev/null 2>&1 || need+=(mount)
[ -x "${SWEEP_CHROMIUM:-/usr/bin/chromium}" ] || need+=(chromium)
[ -x "${SWEEP_CHROMEDRIVER:-/usr/bin/chromedriver}" ] || need+=(chromium-driver)
# Debian's python3 imports ensurepip but cannot make a virtual environment without python3-venv:
# try one (only when the test venv is not there yet).
venv_works() { local d rc; d=$(mktemp -d); python3 -m venv "$d/v" >/dev/null 2>&1 && rc=0 || rc=1; rm -rf "$d"; return "$rc"; }
[ -x "${SWEEP_TEST_VENV:-${CARGO_TARGET_DIR:-target}/test-venv}/bin/python" ] || venv_works || need+=(python3-venv)
if [ "${#need[@]}" -eq 0 ]; then
  exec tests/python-deps.sh
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "tests/install-deps.sh: no apt-get here; install these (Debian names) by hand: ${need[*]}" >&2
  exit 1
fi
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
echo "tests/install-deps.sh: installing ${need[*]}" >&2
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
exec tests/python-deps.sh
