"""Optuna's half of the multi-objective sampler benchmark (issue 26): Optuna's TPESampler over two
objectives (its defaults, only the seed set), NSGAIISampler (its defaults, or --population N) or
RandomSampler, on ZDT1 and ZDT2 in six variables and the constrained TNK (its constraints set on
each trial with `Trial.set_constraint`, which Optuna 5's TPE and NSGA-II read; `constraints_func`
is deprecated), sequential ask and tell, as
benches/objectives.rs does with ours (which describes the functions).

One JSON line per (function, seed):
  {"sampler": "optuna-tpe", "function": F, "seed": S, "hypervolume": [h50, h200], "seconds": s}
hK: the hypervolume of the first K trials' values against (1.1, 11), by the same exact 2-D
computation as ours (written out here, so that both halves measure alike).

Usage: python bench/objectives_optuna.py --out FILE [--sampler tpe|nsga2|random] [--seeds 30]
       [--trials 200] [--functions zdt1,zdt2,tnk] [--population N]
Benchmark-only dependency: `pip install optuna`.
"""
import argparse
import json
import math
import os
import sys
import time

import optuna

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hypervolume import hypervolume as shared_hypervolume  # noqa: E402

CHECKPOINTS = (50, 200)


def variables(function):
    """Names and bounds: six on [0, 1] for ZDT, two on [1e-9, pi] for TNK."""
    if function == "tnk":
        return [(f"x{i}", 1e-9, math.pi) for i in (1, 2)]
    return [(f"x{i}", 0.0, 1.0) for i in range(1, 7)]


def reference(function):
    return (1.2, 1.2) if function == "tnk" else (1.1, 11.0)


def evaluate(function, x):
    """The objectives, and Optuna's constraint values (feasible where each is <= 0)."""
    if function == "tnk":
        c1 = x[0] ** 2 + x[1] ** 2 - 1 - 0.1 * math.cos(16 * math.atan(x[0] / x[1]))
        c2 = (x[0] - 0.5) ** 2 + (x[1] - 0.5) ** 2
        return (x[0], x[1]), [-c1, c2 - 0.5]
    f1 = x[0]
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    f2 = g * (1 - math.sqrt(f1 / g)) if function == "zdt1" else g * (1 - (f1 / g) ** 2)
    return (f1, f2), []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--sampler", default="tpe", choices=["tpe", "nsga2", "random"])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--functions", default="zdt1,zdt2,tnk")
    ap.add_argument("--population", type=int, default=None)
    args = ap.parse_args()
    label = f"optuna-{args.sampler}" + (f"-{args.population}" if args.population and args.sampler == "nsga2" else "")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with open(args.out, "w") as out:
        for function in args.functions.split(","):
            nsga2 = {"population_size": args.population} if args.population else {}
            for seed in range(args.seeds):
                sampler = {
                    "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
                    "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, **nsga2),
                    "random": lambda: optuna.samplers.RandomSampler(seed=seed),
                }[args.sampler]()
                study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
                start = time.perf_counter()
                values, hv = [], []
                for k in range(1, args.trials + 1):
                    trial = study.ask()
                    x = [trial.suggest_float(name, low, high) for name, low, high in variables(function)]
                    v, c = evaluate(function, x)
                    for i, ci in enumerate(c):
                        trial.set_constraint(f"c{i + 1}", ci)
                    study.tell(trial, v)
                    if all(ci <= 0 for ci in c):
                        values.append(v)
                    if k in CHECKPOINTS:
                        hv.append(shared_hypervolume(values, reference(function)))
                line = {"sampler": label, "function": function, "seed": seed, "hypervolume": hv, "seconds": time.perf_counter() - start}
                out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
