"""Proximal optimizer step time against torch's optimizers, and compacted-model inference (issue 15).

Step time: `ProxSGD` (momentum 0.9) and `ProxAdam` (both thresholds) with an L1 and a group-L2
penalty on the weights (`penalised_groups`: biases unpenalised), against ``torch.optim.SGD`` /
``Adam`` with ``foreach=True`` on the same parameter list -- the paper's VGG11 (spec section 2) at
``--width`` (1: its 0.15 M parameters; ``--width 8``: a 9 M-parameter list). The gradients are fixed
random tensors, so only ``opt.step()`` is timed; both are timed alternately in this process, median
of ``--repeats`` blocks of ``--steps`` steps. Target: ratio (prox / torch) <= 1.3.

Inference: a VGG11 whose first ``--prune-fraction`` of every conv layer's output channels (and of
the classifier's inputs) are zeroed, `ndgm.sparse.compact` ed; median forward time of a batch,
dense / compacted (the speed-up), with the fraction of channels removed.

    python benchmarks/bench_prox.py [--width 8] [--steps 20] [--repeats 5] [--threads 1]
                                    [--prune-fraction 0.5] [--batch 256]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ndgm.nets import count_parameters
from ndgm.nets.vgg import SmallVGG
from ndgm.problems import GroupL2Penalty, L1NormPenalty
from ndgm.sparse import ProxAdam, ProxSGD, compact, measure_compaction, penalised_groups
from ndgm.training import seeded


def block_seconds(opt: torch.optim.Optimizer, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - t0) / steps


def make_model(width: float, seed: int = 0) -> torch.nn.Module:
    model = seeded(seed, lambda: SmallVGG("vgg11", "relu", False, 10, width=width))
    gen = torch.Generator().manual_seed(seed + 1)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    return model


def step_times(width: float, steps: int, repeats: int) -> list[tuple[str, str, float, float]]:
    """(prox optimizer, reference, prox seconds per step, reference seconds per step)."""
    cases = [
        ("ProxSGD l1", "SGD", lambda m: ProxSGD(penalised_groups(m, L1NormPenalty(1e-4)), lr=1e-2, momentum=0.9,
                                                 foreach=True),
         lambda m: torch.optim.SGD(m.parameters(), lr=1e-2, momentum=0.9, foreach=True)),
        ("ProxSGD group", "SGD", lambda m: ProxSGD(penalised_groups(m, GroupL2Penalty(1e-4)), lr=1e-2,
                                                    momentum=0.9, foreach=True),
         lambda m: torch.optim.SGD(m.parameters(), lr=1e-2, momentum=0.9, foreach=True)),
        ("ProxAdam l1 preconditioned", "Adam",
         lambda m: ProxAdam(penalised_groups(m, L1NormPenalty(1e-4)), lr=1e-3, foreach=True),
         lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, foreach=True)),
        ("ProxAdam l1 uniform", "Adam",
         lambda m: ProxAdam(penalised_groups(m, L1NormPenalty(1e-4)), lr=1e-3, threshold="uniform", foreach=True),
         lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, foreach=True)),
        ("ProxAdam group", "Adam",
         lambda m: ProxAdam(penalised_groups(m, GroupL2Penalty(1e-4)), lr=1e-3, foreach=True),
         lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, foreach=True)),
    ]
    out = []
    for name, ref_name, make_prox, make_ref in cases:
        m_prox, m_ref = make_model(width), make_model(width)
        prox, ref = make_prox(m_prox), make_ref(m_ref)
        block_seconds(prox, 2)  # state allocation outside the timing
        block_seconds(ref, 2)
        t_prox, t_ref = [], []
        for _ in range(repeats):
            t_prox.append(block_seconds(prox, steps))
            t_ref.append(block_seconds(ref, steps))
        out.append((name, ref_name, statistics.median(t_prox), statistics.median(t_ref)))
    return out


def inference(width: float, fraction: float, batch: int, repeats: int):
    model = seeded(0, lambda: SmallVGG("vgg11", "relu", False, 10, width=width)).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            k = int(fraction * conv.out_channels)
            conv.weight[:k] = 0
            conv.bias[:k] = 0
    small = compact(model)
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return measure_compaction(model, small, x, repeats=repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=float, default=8.0, help="VGG11 channel multiplier (8: about 9 M parameters)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prune-fraction", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = count_parameters(make_model(args.width))
    print(f"optimizer step, VGG11 width {args.width:g} ({n} parameters), {args.threads} thread(s), "
          f"median of {args.repeats} x {args.steps} steps")
    print(f"{'optimizer':<28} {'reference':<10} {'prox ms':>9} {'ref ms':>9} {'ratio':>7}  target <= 1.3")
    for name, ref, tp, tr in step_times(args.width, args.steps, args.repeats):
        print(f"{name:<28} {ref + ' foreach':<10} {1e3 * tp:9.3f} {1e3 * tr:9.3f} {tp / tr:7.2f}  "
              f"{'ok' if tp / tr <= 1.3 else 'SLOW'}")
    rep = inference(args.width, args.prune_fraction, args.batch, max(3, args.repeats))
    print(f"\ncompacted inference, batch {args.batch}: channels removed {100 * rep.removed_fraction:.1f}%, "
          f"parameters {rep.params_before} -> {rep.params_after}, bytes {rep.bytes_before} -> {rep.bytes_after}, "
          f"{1e3 * rep.seconds_before:.2f} ms -> {1e3 * rep.seconds_after:.2f} ms, speed-up {rep.speedup:.2f}x "
          f"(max output difference {rep.max_abs_diff:.2e})")


if __name__ == "__main__":
    main()
