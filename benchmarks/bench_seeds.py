"""Seeds as a batch dimension: K seeds trained as one stack against K sequential runs (issue 12).

`ndgm.training.train_stack` trains K models of one architecture at once (stacked parameters,
``vmap`` over ``functional_call``, one optimizer over the stacked tensors); the reference is
``ndgm.training.train`` called K times, one model after the other, in the same process and
thread count. Same data, seeds, batches and optimizer; both are timed alternately, best of
``--repeats``, after a warm-up. The printed ratio is sequential time / stacked time (> 1: the
stack pays). Models: the paper's VGG11 / VGG19 (spec section 2, 32 x 32 digits; ``--bn``
adds BatchNorm) as in `activations`, or the MLP of the quick `l1-deep` on the 8 x 8 digits.
The two experiments choose stacking (``--stack-seeds``) from this ratio.

    python benchmarks/bench_seeds.py [--model vgg11|vgg19|mlp] [--k 8] [--epochs 2]
        [--batch-size 32] [--train-size 256] [--threads 1] [--repeats 3] [--bn]
"""

from __future__ import annotations

import argparse
import time

import torch

from ndgm.data.images import load_images
from ndgm.nets.mlp import ImageMLP
from ndgm.nets.vgg import SmallVGG
from ndgm.experiments.l1_deep import MLP_HIDDEN
from ndgm.training import ModelStack, seeded, train, train_stack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("vgg11", "vgg19", "mlp"), default="vgg11")
    ap.add_argument("--activation", default="gelu", help="VGG activation (relu, gelu)")
    ap.add_argument("--bn", action="store_true", help="VGG with BatchNorm")
    ap.add_argument("--k", type=int, default=8, help="seeds")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--train-size", type=int, default=256)
    ap.add_argument("--val-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the experiments' workers use 1)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.model == "mlp":
        data = load_images(None, "half").subset(args.train_size, args.val_size).subsample(4)

        def build():
            return ImageMLP(data.image_shape, MLP_HIDDEN, 10, pool=1)
    else:
        data = load_images(None, "cifar").subset(args.train_size, args.val_size)

        def build():
            return SmallVGG(args.model, args.activation, args.bn)
    seeds = list(range(args.k))
    kw = dict(epochs=args.epochs, batch_size=args.batch_size, augment=False)
    steps = args.epochs * -(-data.n_train // args.batch_size)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.model}"
          f"{' ' + args.activation if args.model != 'mlp' else ''}{' + BN' if args.bn else ''}, K = {args.k} seeds, "
          f"{steps} Adam steps of batch {args.batch_size} per seed")

    def sequential():
        models = [seeded(s, build) for s in seeds]
        t = time.perf_counter()
        for m, s in zip(models, seeds):
            train(m, data, torch.optim.Adam(m.parameters(), lr=args.lr), seed=s, **kw)
        return time.perf_counter() - t

    def stacked():
        stack = ModelStack([seeded(s, build) for s in seeds])
        t = time.perf_counter()
        train_stack(stack, data, torch.optim.Adam(stack.parameters(), lr=args.lr), seeds=seeds, **kw)
        return time.perf_counter() - t

    sequential(), stacked()  # warm-up
    seq, stk = [], []
    for _ in range(args.repeats):
        seq.append(sequential())
        stk.append(stacked())
    s, b = min(seq), min(stk)
    print(f"sequential: {s:.2f}s for {args.k} runs ({1000 * s / (args.k * steps):.1f} ms per model-step, "
          f"best of {args.repeats})")
    print(f"stacked:    {b:.2f}s for {args.k} runs ({1000 * b / (args.k * steps):.1f} ms per model-step)")
    print(f"ratio sequential/stacked = {s / b:.2f} (> 1: stacking the seeds pays)")


if __name__ == "__main__":
    main()
