"""Optuna's half of the sampler benchmark on cheap test functions: Optuna's TPESampler (its
defaults, only the seed set) or its RandomSampler as a baseline, on four minimised functions
(branin, hartmann6, a mixed space with a conditional parameter, branin with Gaussian noise), for
several seeds, with 1 worker (sequential ask/tell) and with W simulated parallel workers.

Parallel simulation with W workers (the Rust half does exactly the same): ask W trials up front
(they stay RUNNING, so the sampler sees them), then repeatedly tell the oldest outstanding trial
its value (FIFO) and ask one new trial while fewer than --trials have been asked, until every
trial is told. With W = 1 this is plain sequential ask/tell. Finished trials count in tell order.

One JSON line per (function, workers, seed):
  {"sampler": "optuna-tpe", "function": F, "workers": W, "seed": S,
   "regret": [r20, r50, r100], "seconds": wall_seconds_of_this_run}
where rK is the simple regret after the first K finished trials: the true value of the finished
trial with the best observed value among the first K, minus the function's optimum (observed and
true values differ only for noisy_branin).

Usage: python bench/samplers_optuna.py --out optuna_samplers.jsonl [--sampler tpe|random]
       [--seeds 30] [--first-seed 0] [--trials 100] [--functions branin,hartmann6,mixed,noisy_branin]
       [--workers 1,4]
Benchmark-only dependencies: `pip install optuna numpy`.
"""
import argparse
import collections
import json
import math
import pathlib
import sys
import time

import numpy as np
import optuna

# Hartmann 6-D: f(x) = -sum_i ALPHA_i exp(-sum_j A_ij (x_j - P_ij)^2) on [0, 1]^6.
H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
H6_A = np.array([
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
])
H6_P = 1e-4 * np.array([
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
])

BRANIN_OPT = 0.397887357729739
HARTMANN6_OPT = -3.32236801141551
NOISE_SD = 2.0


def branin_value(x1, x2):
    b, c = 5.1 / (4 * math.pi ** 2), 5 / math.pi
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


def branin(trial, seed):
    value = branin_value(trial.suggest_float("x1", -5, 10), trial.suggest_float("x2", 0, 15))
    return value, value


def noisy_branin(trial, seed):
    true, _ = branin(trial, seed)
    noise = np.random.default_rng(seed * 1000 + trial.number).normal(0.0, NOISE_SD)
    return true + noise, true


def hartmann6(trial, seed):
    x = np.array([trial.suggest_float(f"x{j}", 0, 1) for j in range(1, 7)])
    value = float(-np.sum(H6_ALPHA * np.exp(-np.sum(H6_A * (x - H6_P) ** 2, axis=1))))
    return value, value


def mixed(trial, seed):
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    x = trial.suggest_float("x", -5, 5)
    if kind == "a":
        value = (x - 1) ** 2 / 4 + 1
    elif kind == "b":
        y = trial.suggest_float("y", 0, 1)  # conditional: exists only for kind b
        value = (x + 2) ** 2 / 4 + 4 * (y - 0.7) ** 2
    else:
        value = 2 + abs(x) / 5
    return value, value


# name -> (objective returning (observed, true), optimum)
FUNCTIONS = {
    "branin": (branin, BRANIN_OPT),
    "hartmann6": (hartmann6, HARTMANN6_OPT),
    "mixed": (mixed, 0.0),
    "noisy_branin": (noisy_branin, BRANIN_OPT),
}
CHECKPOINTS = (20, 50, 100)


def make_sampler(name, seed):
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def run(sampler, function, workers, seed, trials):
    """One simulated search; returns [(observed, true)] in tell order."""
    objective, _ = FUNCTIONS[function]
    study = optuna.create_study(direction="minimize", sampler=make_sampler(sampler, seed))
    outstanding = collections.deque()  # (trial, observed, true), oldest first
    asked = 0

    def ask():
        nonlocal asked
        trial = study.ask()
        observed, true = objective(trial, seed)
        outstanding.append((trial, observed, true))
        asked += 1

    for _ in range(min(workers, trials)):
        ask()
    told = []
    while outstanding:
        trial, observed, true = outstanding.popleft()
        study.tell(trial, observed)
        told.append((observed, true))
        if asked < trials:
            ask()
    return told


def regrets(told, optimum, checkpoints):
    out = []
    for k in checkpoints:
        first = told[:k]
        best = min(range(len(first)), key=lambda i: first[i][0])  # first of equal observed values
        out.append(first[best][1] - optimum)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds first-seed .. first-seed + seeds - 1 (to split a long run across processes)")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--functions", default=",".join(FUNCTIONS))
    ap.add_argument("--workers", default="1,4")
    args = ap.parse_args()
    functions = args.functions.split(",")
    for f in functions:
        if f not in FUNCTIONS:
            ap.error(f"unknown function {f!r}; known: {', '.join(FUNCTIONS)}")
    workers = [int(w) for w in args.workers.split(",")]
    checkpoints = [k for k in CHECKPOINTS if k < args.trials] + [args.trials]
    label = f"optuna-{args.sampler}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with args.out.open("w") as out:
        for function in functions:
            start, summary = time.time(), []
            for w in workers:
                finals = []
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    t = time.time()
                    told = run(args.sampler, function, w, seed, args.trials)
                    r = regrets(told, FUNCTIONS[function][1], checkpoints)
                    out.write(json.dumps({"sampler": label, "function": function, "workers": w, "seed": seed,
                                          "regret": r, "seconds": time.time() - t}) + "\n")
                    out.flush()
                    finals.append(r[-1])
                summary.append(f"{w} worker(s) median r{args.trials} {np.median(finals):.4g}")
            print(f"{label} {function}: {args.seeds} seeds, " + ", ".join(summary)
                  + f", {time.time() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
