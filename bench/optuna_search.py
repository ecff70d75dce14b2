"""The PyTorch + Optuna reference for `bench/search.sh`: the search space of `sweeps/bayes.toml`
(optimiser, momentum for sgd and rmsprop, learning rate, hue, shifts) over the identical U-Net of
`bench/unet_torch.py` on the same dataset directory, with Optuna's TPE sampler and a pruner, two
trials in parallel. Every epoch's validation mean IoU is written with its wall-clock time, so
that `bench/search.sh` can compare both tools at the same moments.

Usage: python bench/optuna_search.py --data DIR --out epochs.jsonl [--trials 12] [--epochs 9]
       [--jobs 2] [--pruner median|hyperband|asha] [--seed 7]
       [--startup 5] [--warmup 0]                   (median: MedianPruner's n_startup_trials,
                                                     n_warmup_steps; Optuna's defaults)
       [--min-resource 1] [--eta 3] [--bootstrap 0]  (asha: SuccessiveHalvingPruner's
                                                     min_resource, reduction_factor,
                                                     bootstrap_count; hyperband: the first two)
Prints a summary as JSON: wall clock, trials, pruned, best value, the numbers of the completed
trials and the Unix time at which the epochs' wall clock starts.
Benchmark-only dependencies: `pip install torch optuna pillow numpy`.
"""
import argparse
import json
import pathlib
import threading
import time

import numpy as np
import optuna
import torch

from data_torch import epoch, load, split
from unet_torch import UNet


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=pathlib.Path, required=True)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--pruner", choices=["median", "hyperband", "asha"], default="median")
    ap.add_argument("--startup", type=int, default=5, help="median: n_startup_trials")
    ap.add_argument("--warmup", type=int, default=0, help="median: n_warmup_steps")
    ap.add_argument("--min-resource", type=int, default=1, help="asha, hyperband: min_resource")
    ap.add_argument("--eta", type=int, default=3, help="asha, hyperband: reduction_factor")
    ap.add_argument("--bootstrap", type=int, default=0, help="asha: bootstrap_count")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)  # one core per parallel trial, as each `sweep` worker gets
    x, y = load(args.data, args.size)
    train_idx, val_idx = split(len(x), 0.2, 42)
    log, lock, start = args.out.open("w"), threading.Lock(), time.time()

    def objective(trial):
        params = {
            "optimizer": trial.suggest_categorical("optimizer", ["adam", "sgd", "rmsprop"]),
            "learning_rate": trial.suggest_float("learning_rate", 3e-4, 3e-2, log=True),
            "hue_delta": trial.suggest_float("hue_delta", 0.0, 0.3),
            "width_shift": trial.suggest_float("width_shift", 0.0, 0.2),
            "height_shift": trial.suggest_float("height_shift", 0.0, 0.2),
        }
        if params["optimizer"] != "adam":
            params["momentum"] = trial.suggest_float("momentum", 0.5, 0.95)
        torch.manual_seed(trial.number)
        rng = np.random.default_rng(trial.number)
        model = UNet(base=8, depth=4)
        lr = params["learning_rate"]
        opt = {
            "adam": lambda: torch.optim.Adam(model.parameters(), lr=lr),
            "sgd": lambda: torch.optim.SGD(model.parameters(), lr=lr, momentum=params["momentum"]),
            "rmsprop": lambda: torch.optim.RMSprop(model.parameters(), lr=lr, momentum=params["momentum"]),
        }[params["optimizer"]]()
        iou = float("nan")
        for number in range(1, args.epochs + 1):
            iou = epoch(model, opt, x, y, train_idx, val_idx, params, rng, args.batch)
            with lock:
                log.write(json.dumps({"trial": trial.number, "epoch": number, "val_iou": iou, "wall": time.time() - start}) + "\n")
                log.flush()
            trial.report(iou, number)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return iou

    pruner = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=args.startup, n_warmup_steps=args.warmup),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(
            min_resource=args.min_resource, max_resource=args.epochs, reduction_factor=args.eta),
        "asha": lambda: optuna.pruners.SuccessiveHalvingPruner(
            min_resource=args.min_resource, reduction_factor=args.eta, bootstrap_count=args.bootstrap),
    }[args.pruner]()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed), pruner=pruner)
    study.optimize(objective, n_trials=args.trials, n_jobs=args.jobs)
    states = [t.state.name for t in study.trials]
    completed = [t.number for t in study.trials if t.state.name == "COMPLETE"]
    print(json.dumps({
        "wall": time.time() - start,
        "trials": len(states),
        "pruned": states.count("PRUNED"),
        "best": study.best_value if completed else None,
        "completed": completed,
        "start": start,
    }))


if __name__ == "__main__":
    main()
