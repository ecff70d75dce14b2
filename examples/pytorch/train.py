"""A PyTorch U-Net trained on Carvana-layout data, swept by `sweep` (examples/pytorch/sweep.toml).

It is an ordinary training script: its settings are command-line flags (`--lr=0.001`, as W&B's
`${args}` passes them), and it prints one JSON line per epoch, which is all `sweep` needs:

    {"epoch": 3, "train_loss": 0.41, "val_loss": 0.38, "val_iou": 0.87}

From the worker it also reads SWEEP_EPOCHS (the epoch target), SWEEP_RESUME_EPOCH (the last epoch
the tracker recorded: a trial that was stopped or whose worker died continues from its
checkpoint) and SWEEP_TRIAL_DIR (where it keeps that checkpoint). Outside `sweep` it runs alone:
`python train.py --data=data --epochs=3`.

The model is the seed's U-Net (conv-BN-ReLU blocks, max-pool down, transposed convolution up),
the loss BCE + dice, the metric the mean IoU of car and background, as `sweep`'s built-in trainer.
Needs torch, numpy and pillow.
"""
import argparse
import json
import os
import pathlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image


def block(cin, n):
    return nn.Sequential(
        nn.Conv2d(cin, n, 3, padding=1), nn.BatchNorm2d(n, eps=1e-3), nn.ReLU(),
        nn.Conv2d(n, n, 3, padding=1), nn.BatchNorm2d(n, eps=1e-3), nn.ReLU(),
    )


class UNet(nn.Module):
    def __init__(self, base, depth):
        super().__init__()
        f = [base << i for i in range(depth + 1)]
        self.down = nn.ModuleList([block(3 if i == 0 else f[i - 1], f[i]) for i in range(depth)])
        self.center = block(f[depth - 1], f[depth])
        self.up = nn.ModuleList([nn.ConvTranspose2d(f[i + 1], f[i], 2, stride=2) for i in reversed(range(depth))])
        self.merge = nn.ModuleList([block(2 * f[i], f[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(base, 1, 1)

    def forward(self, x):
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.center(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([skip, up(x)], 1))
        return self.head(x)


def bce_dice(logits, y):
    p = torch.sigmoid(logits)
    dice = (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
    return F.binary_cross_entropy_with_logits(logits, y) + 1 - dice


def mean_iou(logits, y):
    pred, truth = logits > 0, y > 0.5
    ious = [((p & t).sum() / (p | t).sum().clamp(min=1)).item() for p, t in ((pred, truth), (~pred, ~truth))]
    return sum(ious) / 2


def load(data, size):
    """train/<id>.<ext> with train_masks/<id>_mask.<ext>, resized to size x size."""
    xs, ys = [], []
    for path in sorted((data / "train").iterdir()):
        mask = next((data / "train_masks").glob(path.stem + "_mask.*"))
        xs.append(np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR), np.float32) / 255)
        ys.append(np.asarray(Image.open(mask).convert("L").resize((size, size), Image.NEAREST)) > 0)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(np.stack(ys).astype(np.float32))[:, None]


def augment(x, y, hue_delta, generator):
    """A random hue rotation (in YIQ) per image and a random horizontal flip."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * hue_delta * 2 * torch.pi
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0], rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = 1, c, -s, s, c
    m = torch.linalg.inv(yiq) @ rot @ yiq
    x = torch.einsum("nij,njhw->nihw", m, x).clamp(0, 1)
    flip = torch.rand(n, generator=generator) < 0.5
    x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
    return x, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("DATA_DIR", "data"))
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hue_delta", type=float, default=0.1)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=int(os.environ.get("SWEEP_EPOCHS", "5")))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    seed = int(os.environ.get("SWEEP_SEED", "0"))
    torch.manual_seed(seed)
    x, y = load(pathlib.Path(args.data), args.size)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, len(x) // 5)
    val, train = order[:n_val], order[n_val:]
    model = UNet(args.base, args.depth)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-7)
    generator = torch.Generator().manual_seed(seed + 1)

    # Resume from this trial's checkpoint, which is saved before each epoch is reported.
    trial_dir = pathlib.Path(os.environ.get("SWEEP_TRIAL_DIR", "."))
    checkpoint = trial_dir / "last.pt"
    start, history = 0, []
    if int(os.environ.get("SWEEP_RESUME_EPOCH", "0")) > 0 and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        start, history = state["epoch"], state["history"]
        for line in history:  # epochs the tracker may have missed; a repeat is ignored
            print(json.dumps(line), flush=True)

    for epoch in range(start + 1, args.epochs + 1):
        model.train()
        perm = train[torch.randperm(len(train), generator=generator)]
        losses = []
        for b in range(0, len(perm), args.batch_size):
            xb, yb = augment(x[perm[b : b + args.batch_size]], y[perm[b : b + args.batch_size]].clone(), args.hue_delta, generator)
            loss = bce_dice(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            logits = model(x[val])
            line = {"epoch": epoch, "train_loss": sum(losses) / len(losses), "val_loss": bce_dice(logits, y[val]).item(), "val_iou": mean_iou(logits, y[val])}
        history.append(line)
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": generator.get_state(), "epoch": epoch, "history": history}
        torch.save(state, checkpoint.with_suffix(".tmp"))
        os.replace(checkpoint.with_suffix(".tmp"), checkpoint)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
