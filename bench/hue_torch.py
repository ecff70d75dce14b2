"""The PyTorch reference for `bench/main_job.sh`: the README's main job (`sweeps/hue.toml`: four
trials, hue_delta 0, 0.1, 0.2 and 0.3, Adam at 0.003, flips and 10% shifts, 12 epochs of batch 8,
the base-8, depth-4 U-Net of `bench/unet_torch.py` at 64x64) on the same dataset directory, two
trials at a time in two processes of one thread each, as `sweep run --workers 2` runs them.
Prints one JSON line per trial (its best validation mean IoU, its wall clock) and a summary.

Usage: python bench/hue_torch.py --data DIR [--epochs 12] [--workers 2]
Benchmark-only dependencies: `pip install torch pillow numpy`.
"""
import argparse
import json
import multiprocessing
import pathlib
import time

import numpy as np
import torch

from data_torch import epoch, load, split
from unet_torch import UNet

HUES = [0.0, 0.1, 0.2, 0.3]


def train(job):
    number, hue, args = job
    torch.set_num_threads(1)  # one core per worker process, as each `sweep` worker gets
    start = time.time()
    x, y = load(args.data, 64)
    train_idx, val_idx = split(len(x), 0.2, 42)
    torch.manual_seed(number)
    rng = np.random.default_rng(number)
    params = {"hue_delta": hue, "width_shift": 0.1, "height_shift": 0.1}
    model = UNet(base=8, depth=4)
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    best = float("nan")
    for _ in range(args.epochs):
        iou = epoch(model, opt, x, y, train_idx, val_idx, params, rng, 8)
        best = iou if best != best else max(best, iou)
    return {"trial": number, "hue_delta": hue, "best_val_iou": best, "wall": time.time() - start}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=pathlib.Path, required=True)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    start = time.time()
    with multiprocessing.get_context("spawn").Pool(args.workers, maxtasksperchild=1) as pool:
        results = pool.map(train, [(n, hue, args) for n, hue in enumerate(HUES, 1)], chunksize=1)
    for r in results:
        print(json.dumps(r))
    print(json.dumps({"wall": time.time() - start, "trials": len(results), "best": max(r["best_val_iou"] for r in results)}))


if __name__ == "__main__":
    main()
