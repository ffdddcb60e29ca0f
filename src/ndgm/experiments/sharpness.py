"""Sharpness along full-batch GD on a small MLP (digits data), next to 2/eta; kinks hit.

Model: an MLP ``64 -> width x depth -> 10`` with the chosen activation (``relu``, ``gelu``
or ``tanh``; PyTorch's default init from a seeded generator). Data: scikit-learn's bundled
digits, standardised, a seeded 80/20 train/validation split (``--n-train`` keeps the first
rows of the training part). Loss: mean squared error against one-hot targets,
``1/n sum_i 1/2 ||f(x_i) - e_{y_i}||^2`` (the setting of Cohen et al. 2021), or cross-entropy.

Every ``--every`` steps a `SharpnessTracker` records the top-``k`` Hessian eigenvalues by
Lanczos (full batch, warm-started), next to ``2 / eta``. At the end the last value is
checked against a cold, tightly converged Lanczos run, and Lanczos is compared with power
iteration. With ``relu`` the same training runs in float32 and float64 side by side and
every step counts the pre-activations that are exactly 0 -- where autodiff silently took
``relu'(0) = 0``. The top-``--top`` spectrum at the final iterate is certified against a
tightly converged reference.

Adaptive edge of stability: the same MLP from the same initialisation, trained by full-batch
Adam (``torch.optim.Adam``, ``--adam-lr``, betas (``--adam-beta1``, 0.999), eps 1e-8). Every
``--adam-every`` steps the tracker records the preconditioned sharpness
``lambda_1(P^{-1/2} H P^{-1/2})`` with ``P = (1 - beta1^t)(sqrt(v_hat) + eps)`` read from the
optimizer's state, against the threshold at which the frozen-preconditioner update on a
quadratic becomes unstable, ``2/eta (1 + beta1)/(1 - beta1)`` (= ``38/eta`` for
``beta1 = 0.9``; Cohen et al. 2022, "Adaptive gradient methods at the edge of stability", sec. 3;
derivation in `ndgm.analysis.curvature.Preconditioner`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..analysis.curvature import (
    ModelObjective, SharpnessTracker, count_kinks, cross_entropy_sum, lanczos, mse_sum, power_iteration,
)
from ..claims import Claim, bound, holds, not_run
from ..data.digits import load_digits_split
from ..errors import NdgmError
from ..nets.mlp import ACTIVATIONS, make_mlp
from .base import Context, Experiment, Param

EOS_SOURCE = "edge of stability (Cohen et al. 2021; paper section 5)"
ADAPTIVE_SOURCE = ('adaptive edge of stability (Cohen et al. 2022, "Adaptive gradient methods at the edge of '
                   'stability", sec. 3: preconditioned sharpness equilibrates at 2/eta (1 + beta1)/(1 - beta1))')


def mlp_param_count(in_dim: int, width: int, depth: int, out_dim: int) -> int:
    """Parameters of ``in_dim -> width^depth -> out_dim`` with biases."""
    widths = [in_dim] + [width] * depth + [out_dim]
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


class Sharpness(Experiment):
    name = "sharpness"
    title = "Sharpness of a small MLP on digits during full-batch GD, next to 2/eta"
    source = EOS_SOURCE
    params = (
        Param("activation", "relu", "str", "activation: relu, gelu or tanh", choices=tuple(ACTIVATIONS)),
        Param("width", 64, "int", "hidden width"),
        Param("depth", 2, "int", "hidden layers"),
        Param("lr", 0.5, "pos", "GD step size eta (threshold 2/eta)"),
        Param("steps", 600, "int", "GD steps", quick=200),
        Param("every", 10, "int", "record sharpness every this many steps", quick=20),
        Param("k", 2, "int", "top Hessian eigenvalues per record"),
        Param("tol", 1e-5, "pos", "Lanczos relative residual tolerance"),
        Param("n_train", 0, "int", "training rows kept (0: all 1438)", quick=500, minimum=0),
        Param("loss", "mse", "str", "loss: mse (one-hot targets) or ce", choices=("mse", "ce")),
        Param("chunk_size", 1024, "int", "rows per chunk of the Hessian-vector products"),
        Param("top", 3, "int", "top Hessian eigenvalues certified at the final iterate"),
        Param("adam_lr", 0.01, "pos", "full-batch Adam step size eta (threshold 2/eta (1+beta1)/(1-beta1))"),
        Param("adam_beta1", 0.9, "nonneg", "Adam beta1"),
        Param("adam_steps", 600, "int", "full-batch Adam steps (0: no Adam run)", quick=300, minimum=0),
        Param("adam_every", 10, "int", "record the preconditioned sharpness every this many Adam steps", quick=20),
        Param("seed", 0, "int", "seed of the split and the init", minimum=0),
    )
    overrides = {"device": "cpu"}
    figures = ("sharpness.png",)

    def validate(self, config):
        dim = mlp_param_count(64, config["width"], config["depth"], 10)
        if config["k"] > dim:
            raise NdgmError(f"--k must be at most the number of parameters ({dim}), got {config['k']}")
        if config["every"] > config["steps"]:
            raise NdgmError(f"--every must be <= --steps, got every = {config['every']}, steps = {config['steps']}")
        if config["n_train"] > 1438:
            raise NdgmError(f"--n-train must be <= 1438 (0 for all), got {config['n_train']}")
        if config["tol"] >= 1:
            raise NdgmError(f"--tol must be < 1, got {config['tol']}")
        if config["top"] > dim:
            raise NdgmError(f"--top must be at most the number of parameters ({dim}), got {config['top']}")
        if config["adam_beta1"] >= 1:
            raise NdgmError(f"--adam-beta1 must be < 1, got {config['adam_beta1']}")
        if config["adam_steps"] and config["adam_every"] > config["adam_steps"]:
            raise NdgmError(f"--adam-every must be <= --adam-steps, got adam_every = {config['adam_every']}, "
                            f"adam_steps = {config['adam_steps']}")

    def compute(self, config: dict, ctx: Context):
        dtype, device = ctx.dtype, ctx.device
        act, lr, steps = config["activation"], config["lr"], config["steps"]
        relu = act == "relu"
        data = load_digits_split(config["seed"], n_train=config["n_train"] or None, dtype=dtype, device=device)
        loss_fn = mse_sum if config["loss"] == "mse" else cross_entropy_sum
        targets = lambda d: d.Y_train if config["loss"] == "mse" else d.y_train  # noqa: E731
        hidden = (config["width"],) * config["depth"]
        model = make_mlp(64, hidden, 10, act, seed=config["seed"], dtype=dtype, device=device)
        obj = ModelObjective(model, loss_fn, data.X_train, targets(data), chunk_size=config["chunk_size"])
        tracker = SharpnessTracker(lr, config["every"], config["k"], config["tol"], seed=config["seed"])

        # Only ReLU has kinks: count them in this run's dtype and in a twin run in the other
        # dtype (same init and data, rounded), so that float32 and float64 are both seen.
        name_of = lambda dt: str(dt).split(".")[-1]  # noqa: E731
        other = torch.float32 if dtype == torch.float64 else torch.float64
        twin = None
        if relu:
            d_ = load_digits_split(config["seed"], n_train=config["n_train"] or None, dtype=other, device=device)
            m_ = make_mlp(64, hidden, 10, act, seed=config["seed"], dtype=other, device=device)
            twin = ModelObjective(m_, loss_fn, d_.X_train, targets(d_), chunk_size=config["chunk_size"])
        names = [name_of(dtype), name_of(other)] if relu else []
        kinks = {name: np.zeros(steps + 1, dtype=np.int64) for name in names}
        kink_total = {name: 0 for name in names}

        theta = obj.params_vector()
        theta_twin = twin.params_vector() if twin is not None else None
        losses = np.full(steps + 1, np.nan)
        diverged_at = -1
        last_finite = theta
        for step in range(steps + 1):
            value, grad = obj.value_and_grad(theta)
            losses[step] = value
            if not np.isfinite(value):  # recorded; the checks below use the last finite iterate
                diverged_at = step
                break
            last_finite = theta
            if step % config["every"] == 0 or step == steps:
                tracker.record(step, obj, theta)
            if relu:
                for name, o_, th_ in ((names[0], obj, theta), (names[1], twin, theta_twin)):
                    o_.set_params(th_)
                    z, total = count_kinks(o_.model, o_.X)
                    kinks[name][step] = z
                    kink_total[name] += total
                if step < steps:
                    theta_twin = theta_twin - lr * twin.value_and_grad(theta_twin)[1]
            if step < steps:
                theta = theta - lr * grad

        # Checks at the final iterate: a cold tight Lanczos as reference; cold at the
        # tracker's tolerance (HVP count without warm start); power iteration.
        final = theta if diverged_at < 0 else last_finite
        H = obj.hessian(final)
        top = config["top"]
        ref = lanczos(H, k=top, tol=1e-10, max_iter=obj.dim, seed=config["seed"] + 1)
        cold = lanczos(H, k=config["k"], tol=config["tol"], seed=config["seed"] + 1)
        top_run = lanczos(H, k=top, tol=config["tol"], seed=config["seed"] + 3)
        power = power_iteration(H, tol=1e-6, max_iter=300, seed=config["seed"] + 1)
        ref_top = float(ref.eigenvalues[0])
        power_err = np.abs(np.asarray(power.history) - ref_top) / abs(ref_top)
        hit = np.nonzero(power_err <= 1e-3)[0]
        lz1 = lanczos(H, k=1, tol=1e-6, seed=config["seed"] + 1)

        arr = tracker.arrays()
        sharp_top = arr["sharpness_eigs"][:, 0]
        rec_steps = arr["sharpness_steps"]
        second_half = rec_steps >= steps / 2
        val_obj = ModelObjective(model, loss_fn, data.X_val, data.Y_val if config["loss"] == "mse" else data.y_val)
        summary = {
            "activation": act, "dim": obj.dim, "n_train": int(data.X_train.shape[0]), "lr": lr,
            "threshold_2_over_eta": 2.0 / lr, "diverged_at": diverged_at,
            "initial_loss": float(losses[0]), "final_loss": float(losses[np.isfinite(losses)][-1]),
            "val_loss": val_obj.value(final),
            "initial_sharpness": float(sharp_top[0]), "max_sharpness": float(sharp_top.max()),
            "median_sharpness_second_half": float(np.median(sharp_top[second_half])),
            "final_sharpness_tracked": float(sharp_top[-1]), "final_sharpness_reference": ref_top,
            "reference_hvps": ref.n_matvec, "reference_residual": float(ref.residuals[0]),
            "warm_hvps_final": int(arr["sharpness_hvps"][-1]), "cold_hvps_final": cold.n_matvec,
            "total_tracking_hvps": int(arr["sharpness_hvps"].sum()), "records": int(rec_steps.size),
            "lanczos_hvps_1e-6": lz1.n_matvec, "lanczos_err_1e-6": float(abs(lz1.eigenvalues[0] - ref_top) / abs(ref_top)),
            "power_hvps_1e-3": int(hit[0] + 1) if hit.size else None, "power_hvps_run": power.n_matvec,
            "power_final_err": float(power_err[-1]),
            "kinks": {name: int(v.sum()) for name, v in kinks.items()},
            "kink_evaluations": kink_total,
            "top": top, "top_eigenvalues": top_run.eigenvalues.tolist(), "top_residuals": top_run.residuals.tolist(),
            "top_hvps": top_run.n_matvec, "top_reference": ref.eigenvalues.tolist(),
            "top_reference_residuals": ref.residuals.tolist(), "objective": obj.describe(),
        }
        arrays = {"loss": losses, **arr, "top_eigenvalues": top_run.eigenvalues,
                  "top_reference": ref.eigenvalues}
        for name, v in kinks.items():
            arrays[f"kinks_{name}"] = v
        if config["adam_steps"]:
            adam_arrays, adam_summary = self._adam(config, data, loss_fn, targets(data), hidden, dtype, device)
            arrays.update(adam_arrays)
            summary.update(adam_summary)
        return arrays, summary

    @staticmethod
    def _adam(config, data, loss_fn, Y, hidden, dtype, device):
        """Full-batch Adam from the same initialisation; preconditioned sharpness against its threshold."""
        model = make_mlp(64, hidden, 10, config["activation"], seed=config["seed"], dtype=dtype, device=device)
        obj = ModelObjective(model, loss_fn, data.X_train, Y, chunk_size=config["chunk_size"])
        opt = torch.optim.Adam(model.parameters(), lr=config["adam_lr"], betas=(config["adam_beta1"], 0.999))
        tracker = SharpnessTracker(every=config["adam_every"], k=1, tol=config["tol"], optimizer=opt,
                                   objective=obj, seed=config["seed"])
        steps, n = config["adam_steps"], data.X_train.shape[0]
        losses = np.full(steps + 1, np.nan)
        diverged_at = -1
        for step in range(steps + 1):
            opt.zero_grad()
            loss = loss_fn(model(data.X_train), Y) / n  # the objective's mean: ModelObjective's default
            losses[step] = float(loss.detach())
            if not np.isfinite(losses[step]):
                diverged_at = step
                break
            if step and (step % config["adam_every"] == 0 or step == steps):
                tracker.record(step)  # after `step` Adam steps: the optimizer has state
            if step < steps:
                loss.backward()
                opt.step()
        arr = tracker.arrays()
        rec = arr["sharpness_steps"]
        ratio = arr["precond_eigs"][:, 0] / arr["precond_thresholds"]
        second = rec >= steps / 2
        summary = {
            "adam_lr": config["adam_lr"], "adam_beta1": config["adam_beta1"],
            "adam_threshold": float(arr["precond_thresholds"][-1]), "adam_diverged_at": diverged_at,
            "adam_initial_loss": float(losses[0]), "adam_final_loss": float(losses[np.isfinite(losses)][-1]),
            "adam_max_ratio": float(ratio.max()), "adam_median_ratio_second_half": float(np.median(ratio[second]))
            if second.any() else float("nan"),
            "adam_final_precond_sharpness": float(arr["precond_eigs"][-1, 0]),
            "adam_final_sharpness": float(arr["sharpness_eigs"][-1, 0]),
            "adam_records": int(rec.size), "adam_hvps": int(arr["sharpness_hvps"].sum()),
        }
        arrays = {"adam_loss": losses, "adam_steps": rec, "adam_precond": arr["precond_eigs"][:, 0],
                  "adam_thresholds": arr["precond_thresholds"], "adam_sharpness": arr["sharpness_eigs"][:, 0],
                  "adam_lr_thresholds": arr["sharpness_thresholds"]}
        return arrays, summary

    def claims(self, s: dict, config: dict) -> list[Claim]:
        thr = s["threshold_2_over_eta"]
        tol = config["tol"]
        rel_err = abs(s["final_sharpness_tracked"] - s["final_sharpness_reference"]) / abs(s["final_sharpness_reference"])
        out = [
            holds("GD does not diverge", EOS_SOURCE, "no divergence",
                  f"diverged at step {s['diverged_at']}" if s["diverged_at"] >= 0 else "no divergence",
                  s["diverged_at"] < 0, f"the loss is finite at every one of the {config['steps']} steps"),
            bound("sharpness rises to 2/eta (edge of stability): max over the run / (2/eta)", EOS_SOURCE,
                  s["max_sharpness"] / thr, lower=1 - 10 * tol, name="max_k lambda_1(H_k) / (2/eta)",
                  detail=f"initial sharpness {s['initial_sharpness']:.4g}, max {s['max_sharpness']:.4g}, "
                         f"2/eta = {thr:.4g}; the margin is the tracker's accuracy (10 x tol)"),
            bound("sharpness hovers at 2/eta over the second half (median / (2/eta))", EOS_SOURCE,
                  s["median_sharpness_second_half"] / thr, lower=0.9, upper=1.1,
                  name="median_{k >= T/2} lambda_1 / (2/eta)",
                  detail="'hovers at' read as within 10% of 2/eta"),
            bound("tracked (warm-started) Lanczos sharpness agrees with a cold converged reference",
                  "Lanczos residual bound", rel_err, upper=10 * tol, name="relative difference",
                  detail=f"reference {s['final_sharpness_reference']:.10g} ({s['reference_hvps']} HVPs, "
                         f"residual {s['reference_residual']:.1e})"),
        ]
        top, ref = np.asarray(s["top_eigenvalues"]), np.asarray(s["top_reference"])
        top_err = float(np.max(np.abs(top - ref)) / abs(ref[0]))
        out.append(bound(f"top-{s['top']} Hessian spectrum at the final iterate (Lanczos at tol {tol:g}) matches a "
                         "tightly converged reference", "Lanczos residual bound", top_err, upper=10 * tol,
                         name="max_i |lambda_i - reference_i| / lambda_1",
                         detail=f"lambda = {np.array2string(top, precision=6)} ({s['top_hvps']} HVPs); reference "
                                f"{np.array2string(ref, precision=8)}, residual bounds <= "
                                f"{max(s['top_reference_residuals']):.1e}; 2/eta = {thr:.4g}"))
        if s["kinks"]:
            k64, n64 = s["kinks"]["float64"], s["kink_evaluations"]["float64"]
            k32, n32 = s["kinks"]["float32"], s["kink_evaluations"]["float32"]
            out.append(bound("ReLU pre-activations exactly 0 (autodiff took relu'(0) = 0) are rare in float64",
                             "spec section 0 (kink convention)", k64 / n64, upper=1e-6, strict=True,
                             name="fraction of ReLU inputs exactly 0",
                             detail=f"float64 {k64} of {n64}; float32 {k32} of {n32}; counted at every training "
                                    "step over all ReLU inputs"))
        else:
            out.append(not_run("ReLU pre-activations exactly 0 are rare in float64", "spec section 0 (kink convention)",
                               f"activation {s['activation']} has no kink"))
        out.extend(self._adam_claims(s, config))
        return out

    @staticmethod
    def _adam_claims(s: dict, config: dict) -> list[Claim]:
        what = "preconditioned sharpness lambda_1(P^-1/2 H P^-1/2) of full-batch Adam equilibrates at"
        if not config["adam_steps"]:
            return [not_run(f"{what} 2/eta (1+beta1)/(1-beta1)", ADAPTIVE_SOURCE, "--adam-steps 0: no Adam run")]
        b1, lr, thr = s["adam_beta1"], s["adam_lr"], s["adam_threshold"]
        detail = (f"threshold of the frozen-preconditioner EMA-momentum update on a quadratic, P from the optimizer "
                  f"state with both bias corrections; max ratio {s['adam_max_ratio']:.4g}; raw sharpness at the end "
                  f"{s['adam_final_sharpness']:.4g} (2/eta = {2 / lr:.4g}); {s['adam_records']} records, "
                  f"{s['adam_hvps']} HVPs; 'equilibrates at' read as within 10%, as for GD")
        if s["adam_diverged_at"] >= 0:
            detail += f"; Adam's loss diverged at step {s['adam_diverged_at']}"
        return [bound(f"{what} 2/eta (1+beta1)/(1-beta1) = {thr:.5g} (eta = {lr:g}, beta1 = {b1:g}): median over "
                      "the second half / threshold", ADAPTIVE_SOURCE, s["adam_median_ratio_second_half"],
                      lower=0.9, upper=1.1, name="median_{k >= T/2} lambda_1(P^-1 H) / threshold", detail=detail)]


EXPERIMENT = Sharpness()
