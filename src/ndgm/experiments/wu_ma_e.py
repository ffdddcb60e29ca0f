"""Wu-Ma-E's mean-square stability against what SGD does at an interpolating minimum.

Spec stability.md section 3 (Wu, Ma and E 2018): at a global minimum ``theta*`` of zero loss,
GD with step ``eta`` is linearly stable iff the sharpness ``a = lambda_max(H) <= 2 / eta``;
SGD with batches of ``B`` of ``n`` is stable *in mean square* iff the top eigenvalue of
``(I - eta H)^2 + eta^2 (n - B)/(B (n - 1)) Sigma`` is at most 1 (``Sigma = mean_i H_i^2 - H^2``;
`ndgm.analysis.stability.wu_ma_e`, by Lanczos on per-sample Hessian-vector products). Wu-Ma-E
read it as "SGD can only select minima that satisfy it". A single SGD run, though, follows the
top Lyapunov exponent ``lambda`` of the random product ``prod (I - eta H_{i_k})`` (Chemnitz and
Engel): it converges almost surely when ``lambda < 0``. Since ``log E||x||^2`` grows at least
like ``2 lambda`` (Jensen), mean-square stability implies ``lambda < 0`` but not conversely: for
step sizes between the two thresholds the criterion says "unstable" while SGD converges.

Protocol (a choice): a teacher network ``R^2 -> tanh^h -> R`` with N(0, 1) weights labels
``n`` standard-normal inputs (default: one hidden unit, 5 parameters, teacher seed 22, whose
Hessian at the minimum has condition number 45, so that every run decides within a few
thousand steps; wider tanh teachers have condition numbers of 700 and more); the student
starts at the teacher plus a random perturbation of norm ``delta`` and runs plain SGD (batch
size 1, one uniformly drawn sample per step, the sampling ``wu_ma_e`` assumes) or GD for
``iterations`` steps, ``runs`` runs per step size, all in one batch. With more samples than parameters the minimum is isolated, so the distance to
the teacher says what happened: converged (shrunk 100-fold), escaped (grew 100-fold, or
diverged to inf/nan -- recorded with the iteration it was found, checked every 50 steps), or
undecided. The step sizes are fractions of the GD threshold ``2 / a``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..analysis.hessian import ModelLoss, mse_sum
from ..analysis.stability import lyapunov_exponents, wu_ma_e
from ..analysis.stats import binomial_interval
from ..claims import Claim, holds, statistical
from ..errors import NdgmError
from .base import Context, Experiment, Param

SRC = "spec stability.md s.3 (Wu, Ma & E 2018)"
FACTOR = 100.0  # shrink / growth of the distance that decides an outcome
MARGIN = 0.95  # "SGD converges" / "SGD escapes": at least 95% of runs
CHECK_EVERY = 50  # steps between divergence checks


def teacher(width: int, seed: int) -> torch.nn.Sequential:
    """``Linear(2, width) -> Tanh -> Linear(width, 1)`` in float64, every parameter N(0, 1) from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(2, width), torch.nn.Tanh(), torch.nn.Linear(width, 1)).double()
    with torch.no_grad():
        for q in net.parameters():
            q.copy_(torch.randn(q.shape, generator=g, dtype=torch.float64))
    return net


def _split(theta: Tensor, h: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Flat rows in ``nn.Sequential``'s parameter order: W1 (h x 2), b1 (h), W2 (1 x h), b2."""
    return theta[:, :2 * h].reshape(-1, h, 2), theta[:, 2 * h:3 * h], theta[:, 3 * h:4 * h], theta[:, -1]


def sample_grads(theta: Tensor, x: Tensor, y: Tensor, h: int) -> Tensor:
    r"""Gradient of :math:`\tfrac12 (f_\theta(x_k) - y_k)^2` for row ``k`` with its own sample.

    ``theta`` (K, 4h + 1), ``x`` (K, 2), ``y`` (K,); backpropagation through one tanh layer.
    """
    W1, b1, w2, b2 = _split(theta, h)
    a = torch.tanh(torch.matmul(W1, x[:, :, None])[..., 0] + b1)  # (K, h)
    r = (a * w2).sum(1) + b2 - y
    dz = r[:, None] * w2 * (1 - a * a)
    return torch.cat([(dz[:, :, None] * x[:, None, :]).flatten(1), dz, r[:, None] * a, r[:, None]], dim=1)


def full_grads(theta: Tensor, X: Tensor, Y: Tensor, h: int) -> Tensor:
    r"""Gradient of :math:`\tfrac1n \sum_i \tfrac12 (f_\theta(x_i) - y_i)^2` per row (GD)."""
    n = X.shape[0]
    K = theta.shape[0]
    g = sample_grads(theta.repeat_interleave(n, 0), X.repeat(K, 1), Y.repeat(K), h)
    return g.view(K, n, -1).mean(1)


class WuMaE(Experiment):
    name = "wu-ma-e"
    title = "Wu-Ma-E mean-square stability vs SGD runs at an interpolating minimum of a tanh network"
    source = "spec stability.md section 3 (Wu, Ma & E 2018; Chemnitz & Engel 2024)"
    params = (
        Param("width", 1, "int", "hidden tanh units of teacher and student"),
        Param("n", 24, "int", "samples (more than the 4 width + 1 parameters: an isolated minimum)"),
        Param("teacher_seed", 22, "int", "seed of the teacher's weights and the inputs", minimum=0),
        Param("fractions", (0.15, 0.25, 0.3, 0.35, 0.4, 0.5, 0.7, 1.05), "floats",
              "step sizes as fractions of the GD threshold 2 / a", distinct=True),
        Param("runs", 64, "int", "SGD runs per step size"),
        Param("iterations", 3000, "int", "SGD / GD steps per run", quick=2000),
        Param("delta", 1e-6, "pos", "norm of the initial perturbation away from the teacher"),
        Param("lyap_steps", 20000, "int", "steps of the Lyapunov estimate (over 20 blocks)", minimum=40,
              quick=8000),
    )
    fixed = {"dtype": "float64", "device": "cpu"}
    fixed_reason = "stability thresholds and 100-fold distance changes from 1e-6 need float64"
    threads = 1
    figures = ("wu_ma_e.png",)

    def validate(self, config):
        if config["n"] <= 4 * config["width"] + 1:
            raise NdgmError(f"--n must exceed the {4 * config['width'] + 1} parameters (an isolated minimum), "
                            f"got {config['n']}")

    def compute(self, config: dict, ctx: Context):
        h, n, R, T = config["width"], config["n"], config["runs"], config["iterations"]
        net = teacher(h, config["teacher_seed"])
        g = torch.Generator().manual_seed(config["teacher_seed"] + 10**6)
        X = torch.randn(n, 2, generator=g, dtype=torch.float64)
        with torch.no_grad():
            Y = net(X)
        theta_star = torch.cat([q.detach().reshape(-1) for q in net.parameters()])
        d = theta_star.numel()

        # The criterion at each step size, from the one Hessian operator (Lanczos inside wu_ma_e).
        Hs = ModelLoss(net, mse_sum, X, Y).per_sample_hessian(theta_star).dense()  # (n, d, d)
        H_eig = torch.linalg.eigvalsh(Hs.mean(0))
        a = float(H_eig[-1])
        etas = [f * 2 / a for f in config["fractions"]]
        crit = [wu_ma_e(net, X, Y, eta, 1) for eta in etas]
        eye = torch.eye(d, dtype=torch.float64)
        lyap = [lyapunov_exponents(Hs, np.full(n, 1 / n), eta, eye, steps=config["lyap_steps"], blocks=20,
                                   seed=config["seed"]) for eta in etas]

        # SGD (one sample per step) and GD from theta* + delta u, every step size and run in one batch.
        E = len(etas)
        gen = torch.Generator().manual_seed(config["seed"])
        U = torch.randn(E * R, d, generator=gen, dtype=torch.float64)
        start = theta_star + config["delta"] * U / U.norm(dim=1, keepdim=True)
        lr = torch.tensor(etas, dtype=torch.float64).repeat_interleave(R)[:, None]
        sgd = start.clone()
        sgd_diverged_at = torch.full((E * R,), -1, dtype=torch.int64)  # divergence is an outcome: its iteration
        for t in range(1, T + 1):
            idx = torch.randint(0, n, (E * R,), generator=gen)
            sgd = sgd - lr * sample_grads(sgd, X[idx], Y[idx, 0], h)
            if t % CHECK_EVERY == 0 or t == T:
                new = ~torch.isfinite(sgd).all(1) & (sgd_diverged_at < 0)
                sgd_diverged_at[new] = t
        gd = start[::R].clone()  # one GD run per step size (deterministic up to the start)
        lr_gd = torch.tensor(etas, dtype=torch.float64)[:, None]
        gd_diverged_at = torch.full((E,), -1, dtype=torch.int64)
        for t in range(1, T + 1):
            gd = gd - lr_gd * full_grads(gd, X, Y[:, 0], h)
            if t % CHECK_EVERY == 0 or t == T:
                new = ~torch.isfinite(gd).all(1) & (gd_diverged_at < 0)
                gd_diverged_at[new] = t

        def outcome(theta: Tensor) -> np.ndarray:
            dist = (theta - theta_star).norm(dim=1)
            ratio = (dist / config["delta"]).numpy()
            return np.where(~np.isfinite(ratio) | (ratio >= FACTOR), 1, np.where(ratio <= 1 / FACTOR, -1, 0))

        sgd_out = outcome(sgd).reshape(E, R)  # -1 converged, +1 escaped, 0 undecided
        gd_out = outcome(gd)
        div = sgd_diverged_at.numpy().reshape(E, R)  # first check (every CHECK_EVERY steps) found non-finite
        per_eta = []
        for k, eta in enumerate(etas):
            c, ly = crit[k], lyap[k]
            per_eta.append({
                "eta": eta, "fraction": config["fractions"][k], "sgd_top": c.sgd_top, "sgd_stable": c.sgd_stable,
                "gd_stable": c.gd_stable, "lyapunov": ly.top, "lyapunov_stderr": ly.top_stderr,
                "converged": int((sgd_out[k] == -1).sum()), "escaped": int((sgd_out[k] == 1).sum()),
                "undecided": int((sgd_out[k] == 0).sum()), "gd_outcome": int(gd_out[k]),
                "diverged": int((div[k] >= 0).sum()),
                "diverged_at_median": float(np.median(div[k][div[k] >= 0])) if (div[k] >= 0).any() else None,
                "gd_diverged_at": int(gd_diverged_at[k]),
            })
        summary = {"sharpness": a, "nonuniformity": crit[0].nonuniformity, "gd_threshold": 2 / a,
                   "hessian_eigenvalues": H_eig.tolist(), "dim": d, "n": n, "runs": R, "iterations": T,
                   "per_eta": per_eta}
        arrays = {"etas": np.asarray(etas), "sgd_outcome": sgd_out, "gd_outcome": gd_out,
                  "sgd_top": np.array([c.sgd_top for c in crit]), "lyapunov": np.array([ly.top for ly in lyap]),
                  "lyapunov_stderr": np.array([ly.top_stderr for ly in lyap]),
                  "final_distance": (sgd - theta_star).norm(dim=1).numpy().reshape(E, R)}
        return arrays, summary

    def claims(self, s: dict, config: dict) -> list[Claim]:
        rows = s["per_eta"]
        R = s["runs"]
        stable = [r for r in rows if r["sgd_stable"]]
        unstable = [r for r in rows if not r["sgd_stable"]]
        out: list[Claim] = []

        def pooled(group, key):
            k, m = sum(r[key] for r in group), R * len(group)
            return k, m

        def etas_of(group):
            return ", ".join(f"{r['eta']:.3g}" for r in group)

        if stable:
            k, m = pooled(stable, "converged")
            iv = binomial_interval(k, m)
            out.append(statistical(
                "mean-square stable (Wu-Ma-E's SGD condition holds): SGD converges to the minimum", SRC,
                f"fraction converged > {MARGIN}", statistic="fraction of SGD runs whose distance to the minimum "
                f"shrank {FACTOR:g}-fold, pooled over the step sizes the criterion calls stable",
                **iv.claim_kwargs(), margin=MARGIN, test="greater",
                values=[r["converged"] / R for r in stable],
                detail=f"eta in {{{etas_of(stable)}}}; top eigenvalues "
                       + ", ".join(f"{r['sgd_top']:.4f}" for r in stable)))
        if unstable:
            k, m = pooled(unstable, "escaped")
            iv = binomial_interval(k, m)
            window = [r for r in unstable if r["lyapunov"] + 3 * r["lyapunov_stderr"] < 0]
            out.append(statistical(
                "not mean-square stable: SGD does not stay at the minimum (Wu-Ma-E: it cannot select it)", SRC,
                f"fraction escaped > {MARGIN}", statistic="fraction of SGD runs whose distance grew "
                f"{FACTOR:g}-fold, pooled over the step sizes the criterion calls unstable",
                **iv.claim_kwargs(), margin=MARGIN, test="greater",
                values=[r["escaped"] / R for r in unstable],
                detail=f"eta in {{{etas_of(unstable)}}}; "
                       + (f"at eta in {{{etas_of(window)}}} the Lyapunov exponent is negative "
                          f"({', '.join(format(r['lyapunov'], '.2g') for r in window)}) and "
                          f"{sum(r['converged'] for r in window)} of {R * len(window)} runs converged: mean-square "
                          "stability is sufficient, not necessary" if window else
                          "no step size in the grid lies between the two thresholds")))
        decided = [r for r in rows if abs(r["lyapunov"]) > 3 * r["lyapunov_stderr"]]
        agree = sum(r["converged"] if r["lyapunov"] < 0 else r["escaped"] for r in decided)
        iv = binomial_interval(agree, R * len(decided)) if decided else None
        if iv is not None:
            out.append(statistical(
                "contrast: the sign of the Lyapunov exponent predicts each SGD run (Chemnitz-Engel)",
                "spec stability.md s.3", f"fraction agreeing > {MARGIN}",
                statistic="fraction of runs that converged where lambda < 0 and escaped where lambda > 0, step "
                          "sizes with |lambda| > 3 standard errors", **iv.claim_kwargs(), margin=MARGIN,
                test="greater", values=[(r["converged"] if r["lyapunov"] < 0 else r["escaped"]) / R for r in decided],
                detail="lambda per step size: " + ", ".join(
                    f"{r['eta']:.3g}: {r['lyapunov']:.3g} +- {r['lyapunov_stderr']:.1g}" for r in rows)))
        wrong = [r for r in rows if (r["gd_outcome"] == -1) != r["gd_stable"] or r["gd_outcome"] == 0]
        out.append(holds(
            "GD: the minimum is stable iff the sharpness a <= 2/eta (Wu-Ma-E's GD condition)", SRC,
            0, len(wrong), not wrong,
            f"exact: count of step sizes where GD's outcome (converged {FACTOR:g}-fold or not) differs from "
            "a <= 2/eta == 0",
            f"a = {s['sharpness']:.6g}, 2/a = {s['gd_threshold']:.6g}; GD outcomes "
            + ", ".join(f"{r['eta']:.3g}: {({-1: 'converged', 1: 'escaped', 0: 'undecided'})[r['gd_outcome']]}"
                        + (f" (inf/nan by step {r['gd_diverged_at']})" if r["gd_diverged_at"] >= 0 else "")
                        for r in rows)))
        return out


EXPERIMENT = WuMaE()
