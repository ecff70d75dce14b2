"""Optuna 5's half of bench/program.sh: the same fake program (bench/fake_program.sh) run as a
subprocess per trial, its lines read, each epoch reported with `trial.report` and judged with
`should_prune` (the process killed when pruned), on Optuna's SQLite storage.

Usage: python bench/program_optuna.py --db FILE --trials N [--epochs 3] [--sampler random|tpe]
       [--time-ops]  (then also time what a user asks of a finished study: listing, best,
                      importance, one more TPE ask)
Prints one JSON line. Benchmark-only dependency: `pip install optuna` (and optuna-dashboard for
bench/program.sh's dashboard line).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import optuna

HERE = os.path.dirname(os.path.abspath(__file__))


def objective(trial, epochs):
    x = trial.suggest_float("x", 0.0, 1.0)
    env = dict(os.environ, SWEEP_EPOCHS=str(epochs))
    proc = subprocess.Popen(["sh", os.path.join(HERE, "fake_program.sh"), f"--x={x}"], stdout=subprocess.PIPE, text=True, env=env)
    value = None
    for line in proc.stdout:
        report = json.loads(line)
        value = report["val_loss"]
        trial.report(value, report["epoch"])
        if trial.should_prune():
            proc.kill()
            proc.wait()
            raise optuna.TrialPruned()
    if proc.wait() != 0:
        raise RuntimeError("the program failed")
    return value


def timed(f, n=5):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def dashboard(db):
    """optuna-dashboard's API for the study (what its study page loads), if it is installed."""
    import shutil
    import socket
    import urllib.request

    exe = shutil.which("optuna-dashboard") or os.path.join(os.path.dirname(sys.executable), "optuna-dashboard")
    if not os.path.exists(exe):
        return {}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([exe, f"sqlite:///{db}", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        study_id = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies").read())["study_summaries"][0]["study_id"]
        return {"dashboard_study_api_s": timed(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study_id}", timeout=120).read())}
    finally:
        server.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--trials", type=int, required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--sampler", default="random")
    ap.add_argument("--time-ops", action="store_true")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{args.db}"
    sampler = optuna.samplers.RandomSampler(seed=0) if args.sampler == "random" else optuna.samplers.TPESampler(seed=0)
    start = time.perf_counter()
    study = optuna.create_study(study_name="program", storage=storage, sampler=sampler, pruner=optuna.pruners.MedianPruner())
    study.optimize(lambda t: objective(t, args.epochs), n_trials=args.trials)
    wall = time.perf_counter() - start
    out = {"tool": "optuna", "version": optuna.__version__, "trials": args.trials, "wall": wall, "per_trial_ms": 1000 * wall / args.trials}
    if args.time_ops:
        loaded = optuna.load_study(study_name="program", storage=storage)
        out["ls_s"] = timed(lambda: loaded.trials_dataframe())
        out["best_s"] = timed(lambda: optuna.load_study(study_name="program", storage=storage).best_trial)
        out["importance_s"] = timed(lambda: optuna.importance.get_param_importances(loaded), n=1)
        tpe = optuna.load_study(study_name="program", storage=storage, sampler=optuna.samplers.TPESampler(seed=1))

        def ask():
            trial = tpe.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})
            tpe.tell(trial, state=optuna.trial.TrialState.FAIL)

        out["tpe_ask_s"] = timed(ask)
        out.update(dashboard(args.db))
    print(json.dumps(out))
    if args.time_ops:
        print(json.dumps(out), file=sys.stderr)


if __name__ == "__main__":
    main()
