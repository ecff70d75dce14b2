"""What the PyTorch references (`bench/optuna_search.py`, `bench/hue_torch.py`) share: the
Carvana-layout loader, the seeded split, the augmentations of `sweeps/*.toml` (hue, flip, shifts),
the validation mean IoU and one epoch of training, as close to `sweep`'s as PyTorch makes them
(the hue shift is a YIQ rotation here and the resize PIL's box filter).
"""
import math

import numpy as np
import torch
from PIL import Image

from unet_torch import loss_fn


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


def epoch(model, opt, x, y, train_idx, val_idx, params, rng, batch):
    """One epoch: the training split shuffled and augmented in batches, then the validation mean
    IoU (returned)."""
    model.train()
    order = rng.permutation(train_idx)
    for b in range(0, len(order), batch):
        idx = order[b : b + batch]
        xb, yb = augment(x[idx], y[idx], params, rng)
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return mean_iou(torch.cat([model(x[val_idx[b : b + 32]]) for b in range(0, len(val_idx), 32)]), y[val_idx])
