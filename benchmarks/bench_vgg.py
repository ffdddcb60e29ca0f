"""Training throughput of `ndgm.training.train` against a plain PyTorch loop (issue 6).

Same model (the paper's VGG11 of spec section 2, ReLU, no BatchNorm), same data (the
offline digits at 32 x 32, the activations experiment's quick subset), same batch, same
Adam, same number of epochs, no augmentation; both measured in this process, alternating,
best of ``--repeats``. The harness adds per-epoch validation, an L1 norm and a checkpoint;
the plain loop does none of these, so we time the harness with validation on the same
split sizes. Target: harness images/s >= 0.95 x plain images/s.

    python benchmarks/bench_vgg.py [--epochs 3] [--batch-size 16] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ndgm.data.images import load_images
from ndgm.nets.vgg import SmallVGG
from ndgm.training import evaluate, seeded, train


def plain_loop(model, data, epochs, batch_size, seed):
    """What one would write by hand: shuffle, slice, forward, backward, step; validation per epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = data.n_train
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=g)
        total = 0.0
        for start in range(0, n, batch_size):
            x, y = data.batch(order[start:start + batch_size])
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        losses.append(total)
        evaluate(model, data)
    return losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--train-size", type=int, default=512)
    ap.add_argument("--val-size", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (quick config: 1)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--checkpoint", action="store_true", help="also write a checkpoint every epoch")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_images(None).subset(args.train_size, args.val_size)
    images = args.epochs * data.n_train
    print(f"torch {torch.__version__}, {args.threads} thread(s), VGG11 (spec section 2), digits "
          f"{data.n_train} train / {data.n_val} val, batch {args.batch_size}, {args.epochs} epochs")

    def run_plain():
        m = seeded(19, lambda: SmallVGG("vgg11"))
        t = time.perf_counter()
        plain_loop(m, data, args.epochs, args.batch_size, 19)
        return time.perf_counter() - t

    def run_harness():
        m = seeded(19, lambda: SmallVGG("vgg11"))
        with tempfile.TemporaryDirectory() as tmp:
            ck = Path(tmp) / "ck.pt" if args.checkpoint else None
            t = time.perf_counter()
            train(m, data, torch.optim.Adam(m.parameters(), lr=1e-3), epochs=args.epochs, batch_size=args.batch_size,
                  seed=19, augment=False, checkpoint=ck)
            return time.perf_counter() - t

    run_plain(), run_harness()  # warm-up
    plain, harness = [], []
    for _ in range(args.repeats):
        plain.append(run_plain())
        harness.append(run_harness())
    p, h = min(plain), min(harness)
    print(f"plain loop: {images / p:.0f} images/s (best of {args.repeats}: {p:.2f}s)")
    print(f"ndgm.train: {images / h:.0f} images/s (best of {args.repeats}: {h:.2f}s)"
          + (" incl. a checkpoint per epoch" if args.checkpoint else ""))
    print(f"ratio harness/plain throughput = {p / h:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
