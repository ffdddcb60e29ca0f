"""Hessian spectra of one small network at many parameter points: batched over points vs a per-point loop.

The nonsingularity experiment needs the full Hessian spectrum at many parameter points of
one small network. Two ways through the one Hessian operator, measured in the same process:

* **batched**: `BatchedModelHessian(loss, thetas).dense()` -- all ``K`` Hessians from
  ``torch.func.vmap`` over the points and over the unit vectors (``ceil(d / max_vectors)``
  vectorised calls) -- then one batched ``eigvalsh`` of ``(K, d, d)``;
* **loop**: for each point `ModelHessian(loss, theta).dense()` (``d`` double backwards, as
  every single-point operator does) and ``eigvalsh`` of ``(d, d)``;
* **loop of vectorised points**: for each point `BatchedModelHessian(loss, theta[None])` (vmap
  over the unit vectors only), which separates the gain of batching the points from that of
  batching the vectors.

All give the same Hessians (the maximum entry-wise difference is printed; it is rounding).
Printed: seconds for each, per point, and the ratios loop / batched (> 1: batching wins).

Usage::

    python benchmarks/bench_spectra.py [--arch mlp] [--activation gelu] [--points 32] [--n 64]
        [--side 4] [--max-vectors 64] [--repeats 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ndgm.analysis.hessian import BatchedModelHessian, ModelLoss, ParameterFlattener, cross_entropy_sum, mse_sum
from ndgm.data.digits import load_digits_split
from ndgm.nets.small import ARCHITECTURES, NS_ACTIVATIONS, make_small_net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="mlp", choices=ARCHITECTURES)
    ap.add_argument("--activation", default="gelu", choices=NS_ACTIVATIONS)
    ap.add_argument("--loss", default="mse", choices=("mse", "ce"))
    ap.add_argument("--points", type=int, default=32, help="parameter points K")
    ap.add_argument("--n", type=int, default=64, help="digits training rows")
    ap.add_argument("--side", type=int, default=4, choices=(2, 4, 8), help="image side after pooling")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--max-vectors", type=int, default=64, help="vectors of a block per vectorised call")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (the best is reported)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_digits_split(args.seed, n_train=args.n)
    X = F.avg_pool2d(data.X_train.reshape(-1, 1, 8, 8), 8 // args.side).reshape(-1, args.side ** 2)
    targets = data.Y_train if args.loss == "mse" else data.y_train
    model = make_small_net(args.arch, args.activation, args.side, 10, args.seed, args.width)
    loss = ModelLoss(model, mse_sum if args.loss == "mse" else cross_entropy_sum, X, targets)
    thetas = torch.stack([ParameterFlattener(make_small_net(args.arch, args.activation, args.side, 10, 1 + k,
                                                            args.width)).flatten() for k in range(args.points)])
    print(f"{args.arch} ({args.activation}, {args.loss}), d = {loss.dim} parameters, n = {X.shape[0]} rows, "
          f"K = {args.points} points, torch threads {torch.get_num_threads()}")

    def batched():
        H = BatchedModelHessian(loss, thetas, max_vectors=args.max_vectors).dense()
        return H, torch.linalg.eigvalsh(0.5 * (H + H.transpose(-1, -2)))

    def loop():
        Hs = [loss.hessian(t).dense() for t in thetas]
        return torch.stack(Hs), torch.stack([torch.linalg.eigvalsh(0.5 * (H + H.T)) for H in Hs])

    def loop_vectorised():
        Hs = [BatchedModelHessian(loss, t[None], max_vectors=args.max_vectors).dense()[0] for t in thetas]
        return torch.stack(Hs), torch.stack([torch.linalg.eigvalsh(0.5 * (H + H.T)) for H in Hs])

    def best(fn):
        fn()  # warm-up (torch.func's first call imports and traces)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    t_b, (Hb, eb) = best(batched)
    t_l, (Hl, el) = best(loop)
    t_v, (Hv, ev) = best(loop_vectorised)
    print(f"batched (vmap over points and vectors): {t_b:.3f} s  ({t_b / args.points * 1e3:.1f} ms per point)")
    print(f"per-point loop, ModelHessian:           {t_l:.3f} s  ({t_l / args.points * 1e3:.1f} ms per point)")
    print(f"per-point loop, vmap over vectors:      {t_v:.3f} s  ({t_v / args.points * 1e3:.1f} ms per point)")
    print(f"ratio loop / batched = {t_l / t_b:.2f};  vectorised loop / batched = {t_v / t_b:.2f}")
    print(f"max |H_batched - H_loop| = {float((Hb - Hl).abs().max()):.2e}, "
          f"max |eig difference| = {float((eb - el).abs().max()):.2e}; "
          f"vectorised loop: {float((Hb - Hv).abs().max()):.2e}")


if __name__ == "__main__":
    main()
