"""The PyTorch reference for `cargo bench --bench unet`: the identical U-Net (the seed's blocks,
BatchNorm in every block), BCE + dice loss, Adam; one training step and one inference forward,
timed the same way (median after warm-up, same thread count, 128x128 inputs).

Usage: python bench/unet_torch.py --base 32 --batch 4 [--size 128] [--depth 5] [--threads 2] [--steps 8]
       [--warmup 2] [--device cpu|cuda] [--no-tf32]
Prints one JSON line: {"train_ms": ..., "infer_ms": ...}. PyTorch is a benchmark-only
dependency: `pip install torch`. On CUDA each timed call ends with the stream drained (the step's
`loss.item()` does it; the clock is read after `torch.cuda.synchronize()` too), PyTorch's defaults
otherwise: eager, cuDNN without benchmark mode, TF32 convolutions (cuDNN's default) unless
`--no-tf32` asks for full float32 as burn computes.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBlock(nn.Module):
    def __init__(self, cin, n):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, n, 3, padding=1), nn.BatchNorm2d(n, eps=1e-3)
        self.c2, self.b2 = nn.Conv2d(n, n, 3, padding=1), nn.BatchNorm2d(n, eps=1e-3)

    def forward(self, x):
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))))


class Decoder(nn.Module):
    def __init__(self, cin, n):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, n, 2, stride=2)
        self.norm = nn.BatchNorm2d(2 * n, eps=1e-3)
        self.conv = ConvBlock(2 * n, n)

    def forward(self, x, skip):
        return self.conv(F.relu(self.norm(torch.cat([skip, self.up(x)], 1))))


class UNet(nn.Module):
    def __init__(self, base=32, depth=5):
        super().__init__()
        f = [base << i for i in range(depth + 1)]
        self.enc = nn.ModuleList([ConvBlock(3 if i == 0 else f[i - 1], f[i]) for i in range(depth)])
        self.center = ConvBlock(f[depth - 1], f[depth])
        self.dec = nn.ModuleList([Decoder(f[i + 1], f[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(base, 1, 1)

    def forward(self, x):
        skips = []
        for e in self.enc:
            x = e(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.center(x)
        for d, s in zip(self.dec, reversed(skips)):
            x = d(x, s)
        return self.head(x)


def loss_fn(logits, y):
    p = torch.sigmoid(logits)
    dice = (2 * (p * y).sum() + 1) / (y.sum() + p.sum() + 1)
    return F.binary_cross_entropy_with_logits(logits, y) + (1 - dice)


def median_ms(fn, warmup, steps, sync):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-tf32", action="store_true")
    ap.add_argument("--channels-last", action="store_true", help="NHWC memory format, what a user tuning PyTorch on CPU picks")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if a.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = UNet(a.base, a.depth).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    x = torch.rand(a.batch, 3, a.size, a.size, device=dev)
    y = (torch.rand(a.batch, 1, a.size, a.size, device=dev) > 0.5).float()
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        y = y.contiguous(memory_format=torch.channels_last)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    train = median_ms(train_step, a.warmup, a.steps, sync)
    model.eval()
    with torch.no_grad():
        infer = median_ms(lambda: model(x).sum().item(), a.warmup, a.steps, sync)
    out = {"train_ms": train, "infer_ms": infer, "torch": torch.__version__, "threads": torch.get_num_threads(), "device": a.device, "channels_last": a.channels_last}
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(dev)
        out["tf32"] = torch.backends.cudnn.allow_tf32
    print(json.dumps(out))


if __name__ == "__main__":
    main()
