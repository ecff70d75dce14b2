"""Optuna's half of the multi-objective sampler benchmark (issue 26): Optuna's TPESampler over two
objectives (its defaults, only the seed set), NSGAIISampler or RandomSampler, on ZDT1 and ZDT2 in
six variables, sequential ask and tell, as benches/objectives.rs does with ours.

One JSON line per (function, seed):
  {"sampler": "optuna-tpe", "function": F, "seed": S, "hypervolume": [h50, h200], "seconds": s}
hK: the hypervolume of the first K trials' values against (1.1, 11), by the same exact 2-D
computation as ours (written out here, so that both halves measure alike).

Usage: python bench/objectives_optuna.py --out FILE [--sampler tpe|nsga2|random] [--seeds 30]
       [--trials 200]
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

VARIABLES = 6
CHECKPOINTS = (50, 200)
REFERENCE = (1.1, 11.0)


def zdt(function, x):
    f1 = x[0]
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    f2 = g * (1 - math.sqrt(f1 / g)) if function == "zdt1" else g * (1 - (f1 / g) ** 2)
    return f1, f2


def hypervolume(points):
    """Both minimised: the area the points dominate below REFERENCE."""
    return shared_hypervolume(points, REFERENCE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--sampler", default="tpe", choices=["tpe", "nsga2", "random"])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--trials", type=int, default=200)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with open(args.out, "w") as out:
        for function in ("zdt1", "zdt2"):
            for seed in range(args.seeds):
                sampler = {
                    "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
                    "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
                    "random": lambda: optuna.samplers.RandomSampler(seed=seed),
                }[args.sampler]()
                study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
                start = time.perf_counter()
                values, hv = [], []
                for k in range(1, args.trials + 1):
                    trial = study.ask()
                    x = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(1, VARIABLES + 1)]
                    v = zdt(function, x)
                    study.tell(trial, v)
                    values.append(v)
                    if k in CHECKPOINTS:
                        hv.append(hypervolume(values))
                line = {"sampler": f"optuna-{args.sampler}", "function": function, "seed": seed, "hypervolume": hv, "seconds": time.perf_counter() - start}
                out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
