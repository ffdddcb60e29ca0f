"""The batched trajectory engine: K configurations advance together, one tensor op each.

``run_trajectory`` iterates ``w_{k+1} = rule(w_k, grad f(w_k), eta_k)`` for every
configuration along the leading axis. Series are written into preallocated tensors on
the device (no ``.item()`` per iteration); the only host sync is a divergence check
every ``check_every`` iterations, so that a sweep whose configurations have all
diverged stops early.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import NdgmError, check_int
from ..problems import Problem
from .rules import GD, UpdateRule
from .schedules import Constant, Schedule

__all__ = ["Trajectory", "run_trajectory"]

SERIES = ("loss", "lr", "l1", "l2", "linf")


@dataclass
class Trajectory:
    """What a batched run recorded.

    Attributes
    ----------
    loss, lr, l1, l2, linf : ndarray (T, K)
        Per iteration ``k`` and configuration: ``f(w_k)``, the step size used to go from
        ``w_k`` to ``w_{k+1}``, and ``||w_k||_1, ||w_k||_2, ||w_k||_inf``. After a
        configuration diverges its entries are NaN (padded, not dropped).
    weights : dict[int, ndarray (K, d)]
        ``w_k`` at every requested iteration ``k`` (NaN for a configuration that had
        diverged by then, padded rather than dropped).
    final : ndarray (K, d)
        The last iterate (for a diverged configuration: the first non-finite one).
    diverged_at : ndarray (K,) of int
        Iteration at which the loss first became inf/NaN, ``-1`` if it never did.
    """

    loss: np.ndarray
    lr: np.ndarray
    l1: np.ndarray
    l2: np.ndarray
    linf: np.ndarray
    final: np.ndarray
    diverged_at: np.ndarray
    weights: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def diverged(self) -> np.ndarray:
        return self.diverged_at >= 0


def run_trajectory(
    problem: Problem,
    W0: Tensor,
    lr: float | Tensor,
    iterations: int,
    rule: UpdateRule | None = None,
    schedule: Schedule | None = None,
    record_weights_at: list[int] | range | None = None,
    check_every: int = 100,
    progress: bool = False,
    desc: str = "iterations",
) -> Trajectory:
    r"""Run ``iterations`` steps of ``rule`` on ``problem`` for every row of ``W0``.

    Parameters
    ----------
    problem : Problem
        Batched objective; ``problem.value_and_grad(W)`` gives ``(K,)`` values and
        ``(K, d)`` gradients.
    W0 : Tensor (K, d) or (d,)
        Initial points, one per configuration (a 1-D tensor is one configuration).
    lr : float or Tensor (K,)
        Initial step sizes ``eta_0``; every one must be > 0.
    iterations : int
        Number of iterations ``T``; the loss is recorded at ``w_0 .. w_{T-1}``.
    rule : UpdateRule, default GD
    schedule : Schedule, default Constant
        Called each iteration after the loss at ``w_k`` is known, before the step.
    record_weights_at : iterable of int, optional
        Iterations ``k`` whose iterate ``w_k`` is kept (negative counts from the end).
    check_every : int
        Iterations between host-side checks that stop the run once all have diverged.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Trajectory
    """
    iterations = check_int("iterations", iterations, minimum=1)
    rule = rule or GD()
    schedule = schedule or Constant()
    W = (W0 if W0.ndim == 2 else W0[None, :]).detach().clone()
    K = W.shape[0]
    dtype, device = W.dtype, W.device
    lr0 = torch.as_tensor(lr, dtype=dtype, device=device).expand(K).clone()
    if not bool((lr0 > 0).all()) or not bool(torch.isfinite(lr0).all()):
        raise NdgmError(f"step sizes must be finite and > 0, got {lr0.tolist()}")
    keep = set()
    for i in record_weights_at or ():
        keep.add(i + iterations if i < 0 else i)
    keep = {i for i in keep if 0 <= i < iterations}

    hist = {k: torch.full((iterations, K), float("nan"), dtype=dtype, device=device) for k in SERIES}
    weights: dict[int, Tensor] = {}
    state = rule.init(W)
    lr_t = lr0.clone()
    prev_loss = torch.full((K,), float("inf"), dtype=dtype, device=device)

    for t in tqdm(range(iterations), disable=not progress, desc=desc, mininterval=0.5, leave=False):
        loss, G = problem.value_and_grad(W)
        absW = W.abs()
        hist["loss"][t] = loss
        hist["l1"][t] = absW.sum(-1)
        hist["l2"][t] = torch.linalg.vector_norm(W, dim=-1)
        hist["linf"][t] = absW.amax(-1)
        if t in keep:
            weights[t] = W.clone()
        lr_t = schedule(t, lr_t, lr0, loss, prev_loss)
        hist["lr"][t] = lr_t
        prev_loss = loss
        # A configuration whose loss is not finite keeps its iterate: it has stopped. (Its loss
        # stays non-finite, so it stays stopped.) Bookkeeping happens once, after the loop.
        W_next, state = rule.step(W, G, lr_t, state, t + 1)
        W = torch.where(torch.isfinite(loss)[:, None], W_next, W)
        if check_every and (t + 1) % check_every == 0 and not bool(torch.isfinite(loss).any()):
            break  # every configuration diverged; the rest of the series stays NaN

    # Divergence iteration = first non-finite loss; everything recorded from then on is NaN.
    bad = ~torch.isfinite(hist["loss"])
    diverged = bad.any(0)
    diverged_at = torch.where(diverged, bad.to(torch.int8).argmax(0), torch.full_like(diverged, -1, dtype=torch.long))
    after = torch.arange(iterations, device=device)[:, None] >= torch.where(diverged, diverged_at, iterations)[None, :]
    for series in hist.values():
        series.masked_fill_(after, float("nan"))
    # Requested iterates are padded like the series: NaN from a configuration's divergence on,
    # and for the iterations an early stop (all diverged) never reached.
    nan_w = torch.full_like(W, float("nan"))
    for t in keep:
        weights[t] = torch.where(after[t][:, None], nan_w, weights[t]) if t in weights else nan_w

    return Trajectory(
        loss=hist["loss"].cpu().numpy(),
        lr=hist["lr"].cpu().numpy(),
        l1=hist["l1"].cpu().numpy(),
        l2=hist["l2"].cpu().numpy(),
        linf=hist["linf"].cpu().numpy(),
        final=W.cpu().numpy(),
        diverged_at=diverged_at.cpu().numpy(),
        weights={k: v.cpu().numpy() for k, v in weights.items()},
    )
