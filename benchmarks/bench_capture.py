"""Capture benchmark: the batched engine against a plain per-iteration PyTorch loop.

(a) one capture run (paper sizes, 5000 x 500, float64, 6000 iterations) on the engine vs
    the plain loop written like the paper's appendix script (target: engine <= 0.9x);
(b) 64 configurations (8 step sizes x 8 L1 weights) in one batched engine run vs 64
    sequential plain loops, both with the same reduced iteration count (target: >= 10x).

Both sides are measured in this process, one after the other. Usage:

    python benchmarks/bench_capture.py [--iterations 6000] [--sweep-iterations 300] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ndgm.dynamics import GD, DecayOnIncrease, run_trajectory
from ndgm.experiments.capture import capture_data
from ndgm.problems import ReLURegression


def plain_loop(X, y, w0, lr, l1, iterations):
    """The appendix script's loop: nn.Linear, MSELoss(sum), SGD, .item() and copies each step."""
    d = X.shape[1]
    model = torch.nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w0)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    crit = torch.nn.MSELoss(reduction="sum")
    prev = float("inf")
    losses, weights, lrs, inf_norms = [], [], [], []
    for _ in range(iterations):
        loss = crit(torch.relu(model(X)), y) + (0.0 * model.weight.pow(2).sum() + l1 * torch.norm(model.weight, p=1))
        cur = loss.item()
        losses.append(cur)
        weights.append(np.copy(model.weight.detach().numpy()))
        inf_norms.append(model.weight.abs().max().item())
        lrs.append(opt.param_groups[0]["lr"])
        if cur > prev:
            for g in opt.param_groups:
                g["lr"] *= 0.9
        prev = cur
        loss.backward()
        opt.step()
        opt.zero_grad()
    return losses


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=6000)
    ap.add_argument("--sweep-iterations", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats of (a); the best of each side counts")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float64, 5000 x 500")

    X, y, w0 = capture_data()
    T = args.iterations
    problem = ReLURegression(X, y, l1=1e-3)
    plain_times, engine_times = [], []
    for _ in range(args.repeats):  # interleaved, so that both sides see the same machine
        t_plain, losses = timed(lambda: plain_loop(X, y, w0, 0.01, 1e-3, T))
        t_engine, traj = timed(lambda: run_trajectory(problem, w0, 0.01, T, GD(), DecayOnIncrease(0.9),
                                                       record_weights_at=range(-1000, 0)))
        plain_times.append(t_plain)
        engine_times.append(t_engine)
    t_plain, t_engine = min(plain_times), min(engine_times)
    same = np.array_equal(np.asarray(losses), traj.loss[:, 0])
    print(f"(a) one run, {T} iterations, best of {args.repeats}: plain loop {t_plain:.2f}s, engine {t_engine:.2f}s, "
          f"ratio engine/plain = {t_engine / t_plain:.3f} (target <= 0.9); identical losses: {same}; "
          f"final loss {traj.loss[-1, 0]!r}")

    Ts = args.sweep_iterations
    lrs = np.logspace(-4, -1, 8)
    l1s = np.logspace(-4, 0, 8)
    grid = [(a, b) for a in lrs for b in l1s]

    def sequential():
        return [plain_loop(X, y, w0, a, b, Ts)[-1] for a, b in grid]

    def batched():
        lr_t = torch.tensor([a for a, _ in grid], dtype=torch.float64)
        l1_t = torch.tensor([b for _, b in grid], dtype=torch.float64)
        return run_trajectory(ReLURegression(X, y, l1=l1_t), w0.repeat(len(grid), 1), lr_t, Ts, GD(), DecayOnIncrease(0.9))

    t_seq, finals = timed(sequential)
    t_bat, btraj = timed(batched)
    agree = np.allclose(np.asarray(finals), btraj.loss[-1], rtol=1e-9)
    print(f"(b) 64 configurations x {Ts} iterations: 64 sequential plain loops {t_seq:.2f}s, "
          f"one batched engine run {t_bat:.2f}s, speed-up = {t_seq / t_bat:.1f}x (target >= 10); "
          f"final losses agree to 1e-9: {agree}")


if __name__ == "__main__":
    main()
