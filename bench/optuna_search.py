"""The PyTorch + Optuna reference for `bench/search.sh`: the search space of `sweeps/bayes.toml`
(optimiser, momentum for sgd and rmsprop, learning rate, hue, shifts) over the identical U-Net of
`bench/unet_torch.py` on the same dataset directory, with Optuna's TPE sampler and a pruner, two
trials in parallel. Every epoch's validation mean IoU is written with its wall-clock time, so
that `bench/search.sh` can compare both tools at the same moments.

Usage: python bench/optuna_search.py --data DIR --out epochs.jsonl [--trials 12] [--epochs 9]
       [--jobs 2] [--pruner median|hyperband] [--seed 7]
Benchmark-only dependencies: `pip install torch optuna pillow numpy`.
"""
import argparse
import json
import math
import pathlib
import threading
import time

import numpy as np
import optuna
import torch
import torch.nn.functional as F
from PIL import Image

from unet_torch import UNet, loss_fn


def load(data, size):
    """The Carvana layout (train/<id>.png, train_masks/<id>_mask.png) at size x size, as tensors
    in [0, 1] (images) and {0, 1} (masks): area-average resize, any mask value above 0 is car."""
    images, masks = [], []
    for path in sorted((data / "train").iterdir()):
        mask_path = next((data / "train_masks").glob(path.stem + "_mask.*"))
        image = Image.open(path).convert("RGB").resize((size, size), Image.BOX)
        mask = Image.open(mask_path).convert("L").point(lambda v: 255 if v > 0 else 0).resize((size, size), Image.BOX)
        images.append(np.asarray(image, dtype=np.float32) / 255.0)
        masks.append((np.asarray(mask, dtype=np.float32) >= 127.5).astype(np.float32))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.stack(masks))[:, None]
    return x, y


def split(n, val_fraction, seed):
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction))
    return order[n_val:], order[:n_val]


def hue_shift(x, delta):
    """Rotates hue by delta (a fraction of a turn) per image, in YIQ space."""
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    rgb = torch.linalg.inv(yiq)
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        a = 2 * math.pi * float(delta[i])
        rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])
        m = rgb @ rot @ yiq
        out[i] = torch.einsum("ij,jhw->ihw", m, x[i]).clamp(0, 1)
    return out


def shift(t, dx, dy):
    """Translates by (dx, dy) pixels, filling with zeros."""
    t = torch.roll(t, shifts=(dy, dx), dims=(-2, -1))
    if dy > 0:
        t[..., :dy, :] = 0
    elif dy < 0:
        t[..., dy:, :] = 0
    if dx > 0:
        t[..., :, :dx] = 0
    elif dx < 0:
        t[..., :, dx:] = 0
    return t


def augment(x, y, params, rng):
    n, _, h, w = x.shape
    x = hue_shift(x, rng.uniform(-params["hue_delta"], params["hue_delta"], n))
    x, y = x.clone(), y.clone()
    for i in range(n):
        if rng.random() < 0.5:
            x[i], y[i] = x[i].flip(-1), y[i].flip(-1)
        dx = int(round(rng.uniform(-params["width_shift"], params["width_shift"]) * w))
        dy = int(round(rng.uniform(-params["height_shift"], params["height_shift"]) * h))
        x[i], y[i] = shift(x[i], dx, dy), shift(y[i], dx, dy)
    return x, y


def mean_iou(logits, y):
    pred = logits > 0
    truth = y > 0.5
    ious = []
    for p, t in ((pred, truth), (~pred, ~truth)):
        union = (p | t).sum().item()
        if union:
            ious.append((p & t).sum().item() / union)
    return sum(ious) / len(ious)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=pathlib.Path, required=True)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--pruner", choices=["median", "hyperband"], default="median")
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
        for epoch in range(1, args.epochs + 1):
            model.train()
            order = rng.permutation(train_idx)
            for b in range(0, len(order), args.batch):
                idx = order[b : b + args.batch]
                xb, yb = augment(x[idx], y[idx], params, rng)
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                iou = mean_iou(torch.cat([model(x[val_idx[b : b + 32]]) for b in range(0, len(val_idx), 32)]), y[val_idx])
            with lock:
                log.write(json.dumps({"trial": trial.number, "epoch": epoch, "val_iou": iou, "wall": time.time() - start}) + "\n")
                log.flush()
            trial.report(iou, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return iou

    pruner = {
        "median": optuna.pruners.MedianPruner(),
        "hyperband": optuna.pruners.HyperbandPruner(min_resource=1, max_resource=args.epochs, reduction_factor=3),
    }[args.pruner]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed), pruner=pruner)
    study.optimize(objective, n_trials=args.trials, n_jobs=args.jobs)
    states = [t.state.name for t in study.trials]
    print(json.dumps({
        "wall": time.time() - start,
        "trials": len(states),
        "pruned": states.count("PRUNED"),
        "best": study.best_value,
    }))


if __name__ == "__main__":
    main()
