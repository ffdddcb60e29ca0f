"""Capture failure of NDGM (paper Fig. 1, appendix A.1) and its smooth contrast (Fig. 5).

Single-layer ReLU regression with every ``y_i <= 0``: convex, unique minimiser ``w* = 0``
with ``L(w*) = ||y||^2``. Plain full-batch SGD, step size multiplied by 0.9 whenever the
loss rose. The loss ends constant -- monotone -- while the L1 norm of the iterates keeps
alternating between two bands: the Capture Theorem's conclusion fails without C^1.

Contrast: GD on ``1/2 w^T A w`` with ``eta < 2 / lambda_max(A)``. ``A = Q diag(a) Q^T``
with ``Q`` the normalised 8x8 Hadamard matrix, ``a = (3, 0.1, ..., 0.1)``, ``w0 = e1``
(a choice: the paper's matrix is not recoverable). The fast direction ``Q[:, 0]`` (all
entries equal) dies first, which spreads ``w`` over all coordinates: the 1-norm rises
from 1 towards 1.75, then decays monotonically at rate ``1 - eta * 0.1``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import hadamard

from ..analysis.oscillation import detect_two_bands, monotone_after
from ..dynamics import DecayOnIncrease, GD, run_trajectory
from ..errors import NdgmError
from ..problems import Quadratic, ReLURegression
from ..claims import Claim, legacy_claim
from .base import Context, Experiment, Param

PAPER_LOSS = 4461.786221675728
TAIL = 1000


def capture_data(n: int = 5000, d: int = 500, seed: int = 42, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Data and initial weights of the capture protocol (spec section 1), bit for bit.

    ``X ~ U(-1, 1)^{n x d}`` then ``y ~ U(-0.99, -0.9)^n`` from numpy's legacy seeded stream,
    both rounded through float32; the weights: a bias-free ``Linear(d, 1)`` default init
    (which consumes the torch stream) and then a float64 ``U(-1, 1)`` redraw. Local
    generators are used so that the global RNG state is left alone; they yield the same
    streams as ``numpy.random.seed`` / ``torch.manual_seed``.
    """
    rs = np.random.RandomState(seed)
    X = torch.from_numpy(rs.uniform(-1, 1, size=(n, d)).astype(np.float32)).to(torch.float64)
    y = torch.from_numpy(rs.uniform(-0.99, -0.9, size=(n, 1)).astype(np.float32)).to(torch.float64)
    g = torch.Generator().manual_seed(seed)
    bound = 1.0 / np.sqrt(d)  # kaiming_uniform_(a=sqrt(5)) on a (1, d) weight: U(-1/sqrt(d), 1/sqrt(d))
    torch.empty(1, d, dtype=torch.float32).uniform_(-bound, bound, generator=g)
    w0 = torch.empty(1, d, dtype=torch.float64).uniform_(-1, 1, generator=g)
    return X.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype), w0.to(device=device, dtype=dtype)


def contrast_quadratic(dim: int = 8, fast: float = 3.0, slow: float = 0.1) -> torch.Tensor:
    """``A = Q diag(fast, slow, ..., slow) Q^T`` with ``Q`` the normalised Hadamard matrix."""
    Q = torch.tensor(hadamard(dim), dtype=torch.float64) / np.sqrt(dim)
    a = torch.full((dim,), slow, dtype=torch.float64)
    a[0] = fast
    return Q @ torch.diag(a) @ Q.T


class Capture(Experiment):
    name = "capture"
    title = "Capture failure of NDGM: monotone loss, non-converging iterates"
    source = "paper Fig. 1 / appendix A.1 (contrast: Fig. 5)"
    params = (
        Param("iterations", 6000, "int", "SGD iterations (paper: 6000)"),
        Param("lr", 0.01, "pos", "initial step size eta0 (paper: 0.01)"),
        Param("l1", 0.001, "nonneg", "L1 weight lam1 (paper: 0.001)"),
        Param("l2", 0.0, "nonneg", "L2 weight lam2 (paper: 0)"),
        Param("decay", 0.9, "pos", "step-size factor applied when the loss rose (paper: 0.9)"),
        Param("n", 5000, "int", "samples (paper: 5000)"),
        Param("d", 500, "int", "weights (paper: 500)"),
        Param("seed", 42, "int", "seed for numpy and torch (paper: 42)", minimum=0),
        Param("quad_iterations", 400, "int", "GD iterations on the quadratic contrast"),
        Param("quad_lr", 0.1, "pos", "GD step on the quadratic contrast (must be < 2/3)"),
    )
    # The printed number is a CPU float64 bit pattern; another device is one flag away.
    overrides = {"device": "cpu"}
    figures = ("capture.png", "quadratic_contrast.png")
    size_params = ("n", "d", "iterations", "quad_iterations")

    def memory_bytes(self, config):
        # X (n x d) and y as numpy float64 and again as torch tensors, the gradient's (n x d)
        # temporaries, the five series of length T and the recorded tail (TAIL, d)
        n, d, T = config["n"], config["d"], config["iterations"]
        return 8.0 * (4 * n * d + 4 * n + 6 * T + TAIL * d + 6 * config["quad_iterations"])

    def validate(self, config):
        if config["decay"] >= 1:
            raise NdgmError(f"--decay must be < 1, got {config['decay']}")
        if config["quad_lr"] >= 2 / 3.0:
            raise NdgmError(f"--quad-lr must be < 2/lambda_max(A) = 0.6667, got {config['quad_lr']}")

    def compute(self, config: dict, ctx: Context):
        dtype, device, progress = ctx.dtype, ctx.device, ctx.progress
        X, y, w0 = capture_data(config["n"], config["d"], config["seed"], dtype, device)
        problem = ReLURegression(X, y, l1=config["l1"], l2=config["l2"])
        T = config["iterations"]
        tail = min(TAIL, T)
        traj = run_trajectory(problem, w0, config["lr"], T, GD(), DecayOnIncrease(config["decay"]),
                              record_weights_at=range(-tail, 0), progress=progress, desc="capture")
        loss, l1 = traj.loss[:, 0], traj.l1[:, 0]
        loss_tail, l1_tail = loss[-tail:], l1[-tail:]
        W_tail = np.stack([traj.weights[k][0] for k in sorted(traj.weights)])
        step_inf = np.abs(np.diff(W_tail, axis=0)).max(axis=1) if len(W_tail) > 1 else np.array([np.nan])
        bands = detect_two_bands(l1_tail)
        optimum = problem.optimal_value()

        A = contrast_quadratic()
        quad = Quadratic(A)
        e1 = torch.zeros(1, A.shape[0], dtype=torch.float64)
        e1[0, 0] = 1.0
        qtraj = run_trajectory(quad, e1, config["quad_lr"], config["quad_iterations"], GD())
        q_l1 = qtraj.l1[:, 0]
        q_mono = monotone_after(q_l1, strict=True)

        summary = {
            "final_loss": float(loss[-1]),
            # distinct values (NaN, after a divergence, counted once: NaN != NaN would count each)
            "tail_losses_unique": sorted(set(float(v) for v in loss_tail if v == v))
                                  + ([float("nan")] if np.isnan(loss_tail).any() else []),
            "tail_loss_monotone": bool(np.all(np.diff(loss_tail) <= 0)),
            "optimal_value": optimum,
            "final_lr": float(traj.lr[-1, 0]),
            "diverged_at": int(traj.diverged_at[0]),
            "bands": bands.as_dict(),
            "tail_l1_min": float(l1_tail.min()),
            "tail_l1_max": float(l1_tail.max()),
            "tail_min_step_inf": float(step_inf.min()),
            "quad_lambda_max": quad.smoothness,
            "quad_l1_initial": float(q_l1[0]),
            "quad_l1_peak": float(q_l1.max()),
            "quad_l1_peak_at": int(q_l1.argmax()),
            "quad_monotone_after": q_mono,
        }
        arrays = {"loss": loss, "l1": l1, "linf": traj.linf[:, 0], "lr": traj.lr[:, 0],
                  "tail_weights": W_tail, "quad_l1": q_l1, "quad_loss": qtraj.loss[:, 0]}
        return arrays, summary

    def claims(self, s: dict, config: dict) -> list[Claim]:
        src = "paper Fig. 1 / A.1.3"
        uniq = s["tail_losses_unique"]
        gap_to_opt = abs(s["final_loss"] - s["optimal_value"]) if s["optimal_value"] is not None else float("nan")
        b = s["bands"]
        return [
            legacy_claim("loss over the last 1000 iterations is exactly the printed value", src,
                  PAPER_LOSS, uniq[0] if len(uniq) == 1 else uniq, uniq == [PAPER_LOSS]),
            legacy_claim("loss is monotone non-increasing over the last 1000 iterations", src,
                  True, s["tail_loss_monotone"], s["tail_loss_monotone"]),
            legacy_claim("final loss equals L(w*) = ||y||^2 to 1e-12 relative", "spec section 1 (Kumar 2023)",
                  s["optimal_value"], s["final_loss"],
                  bool(gap_to_opt <= 1e-12 * abs(s["optimal_value"] or 1)),
                  f"|L - ||y||^2| = {gap_to_opt:.3g}"),
            legacy_claim("L1 norm alternates between two bands over the last 1000 iterations", src,
                  "two bands near 1.08e-14 and 1.13e-14",
                  f"centres {b['low_centre']:.4g} / {b['high_centre']:.4g}, gap {b['gap']:.3g}, "
                  f"alternation {b['alternation']:.3f}, separation {b['separation']:.2f} sd",
                  b["found"]),
            legacy_claim("iterates never settle: every step of the last 1000 moves w", src,
                  "> 0", s["tail_min_step_inf"], s["tail_min_step_inf"] > 0, "min_k ||w_{k+1} - w_k||_inf"),
            legacy_claim("quadratic contrast: the 1-norm rises first", "paper Fig. 5 / A.1.2",
                  f"peak > {s['quad_l1_initial']:g}", s["quad_l1_peak"], s["quad_l1_peak"] > s["quad_l1_initial"],
                  f"peak at iteration {s['quad_l1_peak_at']}"),
            legacy_claim("quadratic contrast: the 1-norm decays monotonically after some index", "paper Fig. 5 / A.1.2",
                  "an index k* < iterations", s["quad_monotone_after"], s["quad_monotone_after"] is not None,
                  "strictly decreasing from k* on"),
        ]


EXPERIMENT = Capture()
