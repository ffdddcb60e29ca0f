r"""The GD map of real networks is non-singular for almost every step size (non-singularity paper, main theorem).

Spec stability.md sections 1 and 5. Where the loss is C^2, ``det D G_eta = det(I - eta H)
= prod_i (1 - eta lambda_i)``; the theorem says that for networks of fully connected,
convolutional and softmax-attention layers with piecewise-analytic activations and an analytic
loss, the GD and SGD maps (and their compositions) are non-singular for all but countably
many ``eta``: those where ``1/eta`` is a Hessian eigenvalue *identically on an open region*.

Models (float64, `ndgm.nets.small`): an MLP ``s^2 -> width -> 10``, a CNN (one 3x3 conv with
4 channels on the ``s x s`` image) and a one-head softmax-attention block (the image rows as
tokens), each with ReLU, leaky ReLU, sigmoid and GELU, under squared loss (one-hot targets,
``1/n sum 1/2 ||f - y||^2``) and cross-entropy. Data: scikit-learn's digits, standardised,
average-pooled from 8x8 to ``s x s``, the first ``--n-train`` training rows.

What is measured, per (architecture, activation, loss), at ``--points`` random parameter
points (independent default initialisations), all through the one Hessian operator
(`ndgm.analysis.hessian.BatchedModelHessian`: the points' Hessians in one vectorised call;
Lanczos top and bottom eigenvalues when the dimension exceeds ``--dense-max``):

* the spectrum, hence the exceptional step sizes ``{1/lambda_i : lambda_i > 0}`` at each point;
* ``log|det(I - eta H)|`` and the smallest singular value ``sigma_min = min_i |1 - eta lambda_i|``
  of ``I - eta H`` on a log grid of ``eta`` in ``[eta_min, eta_max]`` and at random
  log-uniform ``eta`` (per point); the same for minibatch (SGD) maps ``I - eta H_B``;
  and for compositions of ``--steps`` GD and SGD steps (``eta`` random per trajectory, at most
  ``2 / lambda_max`` of its start), whose Jacobian determinant is the product along the
  trajectory, so ``log|det| = sum_t log|det(I - eta H(theta_t))|``.
  A pair is *numerically singular* when ``sigma_min <= d eps sigma_max`` (NumPy's
  ``matrix_rank`` tolerance; a computed eigenvalue of a symmetric matrix is exact for a matrix
  within about ``d eps ||H||``, so nothing smaller can be told from 0). The claim: none is.
* Whether any step size is exceptional on a region: the spectra at the centre of a ball of
  radius ``--ball-radius`` and at ``--ball-points`` points on its sphere are compared; an
  eigenvalue ``>= 1/eta_max`` present at every point to the rounding level ``d eps ||H||`` is
  *persistent* (`ndgm.analysis.gdmap.region_spectrum`). For the analytic activations every
  eigenvalue moves by orders of magnitude more than rounding (no ``eta`` is exceptional on the
  ball). For ReLU and leaky ReLU the balls keep one activation pattern on the data (the radius is
  divided by 10 until they do; inside one pattern the network is a polynomial in the parameters);
  the eigenvalues still move: the only Hessian directions that are constant there are those of
  dead units, with eigenvalue 0 (no step size).
* The honest ReLU case: where the last hidden layer is dead on the data (its bias shifted so
  every pre-activation is ``<= -dead_margin``: an open set of parameters), a ReLU network's
  output is its output bias, so under squared loss the Hessian is ``I`` on that bias and 0
  elsewhere -- constant on the region. Then ``eta = 1`` is exceptional on an open region (one
  GD step sends every point's output bias to the mean target: measured as the spread of the
  output bias after the step over the spread before). Cross-entropy (``H = diag(p) - p p^T``
  varies with the bias), leaky ReLU, sigmoid and GELU have no persistent eigenvalue there. The
  theorem allows this (countably many exceptional ``eta``); it is the network counterpart of
  the 1-D quartic's ``eta = 1/2`` on ``|t| > 2`` (gdmap-1d), reported alongside.
* Saddle avoidance (spec s.5) on a network: the all-zero hidden layer of a two-layer
  ``s^2 -> width -> 10`` network with GELU (``sigma(0) = 0``, ``sigma'(0) != 0``) and the output
  bias at the mean target is a strict saddle of the squared loss (``grad = 0``; Hessian
  eigenvalues ``+-sigma'(0) s_m(M)`` for each hidden unit, ``M = mean_i (ybar - y_i) x_i^T``, 1 for
  the output bias, 0 otherwise). From ``--saddle-starts`` random starts at distance
  ``--saddle-radius`` GD runs ``--saddle-steps`` steps with a random ``eta`` per start
  (``U(0.25, 1.9) / lambda_max``) and with ``eta* = 1/lambda_max(H(saddle))``, a step size
  singular *at the saddle* but not on a region; a run escapes when it ends at least
  ``--escape-distance`` from the saddle. Fractions with Clopper-Pearson intervals;
  the contrast is the quartic, whose exceptional ``eta = 1/2`` sends every start on
  ``2 < |t| < 6`` onto the local maximum.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..analysis.curvature import lanczos
from ..analysis.gdmap import module_gd_map, region_spectrum, scan_step_sizes
from ..analysis.hessian import BatchedModelHessian, ModelLoss, ParameterFlattener, cross_entropy_sum, mse_sum
from ..analysis.stats import binomial_interval
from ..claims import Claim, holds, statistical
from ..data.digits import load_digits_split
from ..errors import NdgmError
from ..nets.small import (ANALYTIC_ACTIVATIONS, ARCHITECTURES, NS_ACTIVATIONS, SmallMLP, hidden_preactivations,
                          kill_last_hidden_layer, make_small_net)
from ..problems import Quartic1D
from .base import Context, Experiment, Param

SRC = "non-singularity paper, main theorem (spec stability.md s.1)"
SRC_SADDLE = "spec stability.md s.5 (Lee et al. 2016); non-singularity paper"
LOSSES = ("mse", "ce")
KINKED = ("relu", "leaky_relu")
#: Persistence needs eigenvalues to move by at least this many times rounding to count as "moving".
MOVE_FACTOR = 1e3
#: Statistical rows: the paper implies probability 1; a 95% lower bound above this reproduces it.
ESCAPE_MARGIN = 0.9


def digits_inputs(seed: int, n_train: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised digits, average-pooled from 8x8 to ``side x side``, flat: ``X (n, side^2)``, labels ``y``."""
    data = load_digits_split(seed, n_train=n_train)
    X = F.avg_pool2d(data.X_train.reshape(-1, 1, 8, 8), 8 // side).reshape(-1, side * side)
    return X.contiguous(), data.y_train


def _flat(model) -> torch.Tensor:
    return ParameterFlattener(model).flatten()


class Spectra:
    """Eigenvalues of the Hessians of one `ModelLoss` at ``K`` points: dense or Lanczos."""

    def __init__(self, loss: ModelLoss, thetas: torch.Tensor, dense_max: int, lanczos_k: int, seed: int):
        self.dim = loss.dim
        if loss.dim <= dense_max:
            H = BatchedModelHessian(loss, thetas).dense()
            self.values = torch.linalg.eigvalsh(0.5 * (H + H.transpose(-1, -2))).numpy()
            self.complete_from = self.error = None
            self.method = "dense"
            return
        k = min(lanczos_k, loss.dim // 2)  # the two ends must not overlap
        vals, comp, err = [], [], []
        for theta in thetas:
            op = loss.hessian(theta)
            top = lanczos(op, k=k, tol=1e-10, seed=seed)
            bottom = lanczos(lambda v, op=op: -op.matvec(v), loss.dim, k, tol=1e-10, seed=seed + 1)
            vals.append(np.sort(np.concatenate([top.eigenvalues, -bottom.eigenvalues])))
            comp.append(float(top.eigenvalues.min()))
            err.append(float(max(top.residuals.max(), bottom.residuals.max())))
        self.values, self.complete_from, self.error = np.stack(vals), np.array(comp), np.array(err)
        self.method = f"lanczos top/bottom {k}"

    def rows(self, index: slice) -> "Spectra":
        """The spectra of the points ``index`` (a view)."""
        out = copy.copy(self)
        out.values = self.values[index]
        if self.complete_from is not None:
            out.complete_from, out.error = self.complete_from[index], self.error[index]
        return out

    def scan(self, etas):
        """`scan_step_sizes` at ``etas`` (``(K, E)``)."""
        return scan_step_sizes(self.values, etas, self.dim, self.complete_from, self.error)

    @property
    def top(self) -> np.ndarray:
        return self.values[:, -1]


def _loguniform(rng: np.random.Generator, lo: float, hi: float, size) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size=size))


def _sphere(rng: np.random.Generator, center: torch.Tensor, radius: float, m: int) -> torch.Tensor:
    """``center`` and ``m`` points at distance ``radius`` in uniformly random directions: ``(m + 1, d)``."""
    u = torch.as_tensor(rng.standard_normal((m, center.numel())))
    u = u / torch.linalg.vector_norm(u, dim=1, keepdim=True)
    return torch.cat([center[None], center[None] + radius * u])


def _patterns(model, flat: ParameterFlattener, thetas: torch.Tensor, X: torch.Tensor) -> list[torch.Tensor]:
    """The sign pattern ``pre-activation > 0`` of every activation layer on ``X``, per point."""
    out = []
    for theta in thetas:
        flat.write(theta)
        out.append(torch.cat([(p > 0).reshape(-1) for p in hidden_preactivations(model, X)]))
    return out


def _ball_in_one_pattern(rng, center, radius, m, scratch, flat, X, tries: int = 4):
    """A ball (`_sphere`) whose points share the centre's activation pattern on ``X``: the radius is
    divided by 10 until they do (at most ``tries`` draws; 1 for analytic activations). Returns the points, the radius, and
    whether the pattern is shared (for the analytic activations the "pattern" is the sign of the
    pre-activations, which does not change the network's formula)."""
    for _ in range(tries):
        ball = _sphere(rng, center, radius, m)
        pats = _patterns(scratch, flat, ball, X)
        same = all(torch.equal(p, pats[0]) for p in pats[1:])
        if same:
            break
        radius /= 10
    return ball, radius, same


def _values(loss: ModelLoss, thetas: torch.Tensor) -> torch.Tensor:
    """``L(theta_k)`` for every row, vectorised over the points."""
    from torch.func import vmap

    out = torch.zeros(thetas.shape[0], dtype=thetas.dtype)
    for Xc, Yc in loss.chunks():
        out += vmap(loss.chunk_loss, in_dims=(0, None, None))(thetas, Xc, Yc).detach()
    return out


class NonSingularity(Experiment):
    name = "nonsingularity"
    title = "Non-singularity of the GD/SGD map on an MLP, a CNN and softmax attention; saddle avoidance"
    source = "non-singularity paper (Craciun & Ghoshdastidar 2025), main theorem; Lee et al. 2016"
    params = (
        Param("archs", "mlp,cnn,attention", "strs", "architectures", choices=ARCHITECTURES, distinct=True),
        Param("activations", "relu,leaky_relu,sigmoid,gelu", "strs", "activations", choices=NS_ACTIVATIONS,
              distinct=True),
        Param("losses", "mse,ce", "strs", "losses: mse (one-hot targets) and/or ce", choices=LOSSES, distinct=True),
        Param("n_train", 64, "int", "digits training rows", quick=32, minimum=2),
        Param("side", 4, "int", "image side after average pooling from 8x8: 2, 4 or 8"),
        Param("width", 8, "int", "hidden width (MLP layer, attention's activation layer)"),
        Param("points", 8, "int", "random parameter points per (architecture, activation, loss)", quick=2, minimum=2),
        Param("eta_grid", 24, "int", "log-spaced step sizes in [eta_min, eta_max]", quick=8),
        Param("random_etas", 64, "int", "random log-uniform step sizes per point", quick=16),
        Param("eta_min", 0.01, "pos", "smallest step size sampled"),
        Param("eta_max", 100.0, "pos", "largest step size sampled (eigenvalues >= 1/eta_max are the candidates)"),
        Param("sgd_batches", 3, "int", "minibatches per point for the SGD maps", quick=1),
        Param("batch_size", 8, "int", "minibatch size of the SGD maps"),
        Param("steps", 4, "int", "length T of the composed GD and SGD maps", quick=2),
        Param("ball_points", 4, "int", "points on the sphere around a centre (region test)", quick=2),
        Param("ball_radius", 1e-5, "pos", "radius of the region test's ball"),
        Param("dead_margin", 3.0, "pos", "dead region: every last-hidden pre-activation <= -margin"),
        Param("path_points", 24, "int", "points on the path between two parameter points (figure; first "
              "architecture and loss)", quick=8, minimum=2),
        Param("dense_max", 1000, "int", "largest dimension with a dense Hessian (Lanczos above)"),
        Param("lanczos_k", 20, "int", "Lanczos eigenvalues at each end of the spectrum above --dense-max"),
        Param("saddle_width", 4, "int", "hidden width of the saddle network"),
        Param("saddle_activation", "gelu", "str", "saddle network activation (sigma(0) = 0)",
              choices=("gelu", "tanh")),
        Param("saddle_starts", 200, "int", "random starts near the saddle, per arm", quick=60),
        Param("saddle_steps", 400, "int", "GD steps from each start", quick=200),
        Param("saddle_radius", 1e-3, "pos", "distance of the starts from the saddle"),
        Param("escape_distance", 0.1, "pos", "escaped: final distance from the saddle >= this"),
        Param("threads", 1, "int", "CPU threads for torch (tiny tensors: 1 is fastest), 0 = torch's default",
              minimum=0),
    )
    fixed = {"dtype": "float64", "device": "cpu"}
    fixed_reason = "singularity is decided at the float64 rounding level"
    threads = "threads"
    figures = ("nonsingularity_path.png", "nonsingularity_logdet.png", "nonsingularity_saddle.png",
               "nonsingularity.md")

    def validate(self, config):
        if config["side"] not in (2, 4, 8):
            raise NdgmError(f"--side must be 2, 4 or 8 (8x8 digits average-pooled), got {config['side']}")
        if config["eta_min"] >= config["eta_max"]:
            raise NdgmError(f"--eta-min must be < --eta-max, got {config['eta_min']} and {config['eta_max']}")
        if config["n_train"] > 1438:
            raise NdgmError(f"--n-train must be <= 1438, got {config['n_train']}")
        if config["batch_size"] > config["n_train"]:
            raise NdgmError(f"--batch-size must be <= --n-train, got {config['batch_size']} > {config['n_train']}")
        if config["escape_distance"] <= config["saddle_radius"]:
            raise NdgmError(f"--escape-distance must be > --saddle-radius, got {config['escape_distance']} <= "
                            f"{config['saddle_radius']}")

    # -- one (architecture, activation, loss) ------------------------------------------------
    def _config_run(self, arch, act, loss_name, X, y, cfg, rng) -> tuple[dict, dict]:
        Y = F.one_hot(y, 10).to(X.dtype)
        T = Y if loss_name == "mse" else y
        loss_fn = mse_sum if loss_name == "mse" else cross_entropy_sum
        side, width, seed = cfg["side"], cfg["width"], cfg["seed"]
        model = make_small_net(arch, act, side, 10, seed, width)
        loss = ModelLoss(model, loss_fn, X, T)
        d = loss.dim
        K, E, R = cfg["points"], cfg["eta_grid"], cfg["random_etas"]
        spec = lambda lo, th: Spectra(lo, th, cfg["dense_max"], cfg["lanczos_k"], seed)  # noqa: E731
        # The same K initialisations for every activation and loss (paired points).
        thetas = torch.stack([_flat(make_small_net(arch, act, side, 10, seed * 7919 + 1 + k, width))
                              for k in range(K)])
        # One vectorised Hessian call for the random points, the ball around the first one and the
        # ball around its dead-layer version (an open set where ReLU's last hidden layer is 0).
        lam_min = 1.0 / cfg["eta_max"]
        M = cfg["ball_points"]
        scratch = copy.deepcopy(model)
        sflat = ParameterFlattener(scratch)
        tries = 4 if act in KINKED else 1  # a kinked network's formula is fixed by its pattern
        ball, radius, same_pattern = _ball_in_one_pattern(rng, thetas[0], cfg["ball_radius"], M, scratch, sflat, X,
                                                          tries)
        sflat.write(thetas[0])
        dead_top = kill_last_hidden_layer(scratch, X, cfg["dead_margin"])
        dball, dradius, dead_same = _ball_in_one_pattern(rng, sflat.flatten(), cfg["ball_radius"], M, scratch,
                                                         sflat, X, tries)
        allsp = spec(loss, torch.cat([thetas, ball, dball]))
        sp, bs, ds = (allsp.rows(sl) for sl in (slice(0, K), slice(K, K + M + 1), slice(K + M + 1, None)))
        grid = np.geomspace(cfg["eta_min"], cfg["eta_max"], E)
        etas_r = _loguniform(rng, cfg["eta_min"], cfg["eta_max"], (K, R))
        scans = {"gd_grid": sp.scan(np.broadcast_to(grid, (K, E))), "gd_random": sp.scan(etas_r)}
        # SGD maps: minibatch Hessians at the same points.
        sgd_logdet, sgd_margin = [], []
        n = X.shape[0]
        first_batch = None
        for b in range(cfg["sgd_batches"]):
            idx = torch.as_tensor(rng.choice(n, cfg["batch_size"], replace=False))
            lb = ModelLoss(model, loss_fn, X[idx], T[idx])
            spb = spec(lb, thetas)
            if first_batch is None:
                first_batch = (lb, spb)
            s = spb.scan(_loguniform(rng, cfg["eta_min"], cfg["eta_max"], (K, R)))
            scans[f"sgd_{b}"] = s
            sgd_logdet.append(s.log_abs_det)
            sgd_margin.append(s.margin)
        # Compositions of T steps: eta random per trajectory, below 2 / lambda_max of its start.
        comp = {}
        for kind in ("gd", "sgd"):
            eta_k = rng.uniform(0.05, 1.0, K) * 2.0 / np.maximum(sp.top, 1e-12)
            th, total = thetas, np.zeros(K)
            sing = np.zeros(K, dtype=bool)
            for t in range(cfg["steps"]):
                if kind == "gd":
                    lo, st = loss, (sp if t == 0 else None)
                elif t == 0:  # the first SGD step takes the first minibatch above
                    lo, st = first_batch
                else:
                    idx = torch.as_tensor(rng.choice(n, cfg["batch_size"], replace=False))
                    lo, st = ModelLoss(model, loss_fn, X[idx], T[idx]), None
                st = st if st is not None else spec(lo, th)
                s = st.scan(eta_k[:, None])
                total += s.log_abs_det[:, 0]
                sing |= s.singular[:, 0]
                scans[f"comp_{kind}_{t}"] = s
                th = module_gd_map(lo, th, torch.as_tensor(eta_k))
            comp[kind] = (total, sing)

        # Region tests: which eigenvalues stay put on the balls; do the balls keep one activation pattern.
        region = region_spectrum(bs.values, max(lam_min, _cmax(bs)), d)
        dregion = region_spectrum(ds.values, max(lam_min, _cmax(ds)), d)
        # One GD step at eta = 1 from the dead ball: spread of the output bias after / before.
        names = sflat.names
        ob = names.index(model.output_bias)
        start = sum(sflat.numels[:ob])
        sl = slice(start, start + sflat.numels[ob])
        img = module_gd_map(loss, dball, 1.0)
        before = float((dball[1:, sl] - dball[0, sl]).abs().max())
        after = float((img[1:, sl] - img[0, sl]).abs().max())
        at_one = ds.scan(np.ones((dball.shape[0], 1)))

        pairs = sum(int(s.decided.sum()) for s in scans.values())
        singular = sum(int(s.singular.sum()) for s in scans.values())
        margins = np.concatenate([s.margin[s.decided].ravel() for s in scans.values()])
        row = {
            "arch": arch, "activation": act, "loss": loss_name, "dim": d, "method": sp.method,
            "points": K, "step_sizes_per_point": E + R, "sgd_batches": cfg["sgd_batches"], "steps": cfg["steps"],
            "pairs": pairs, "singular": singular, "undecided": sum(int((~s.decided).sum()) for s in scans.values()),
            "min_log10_margin": float(np.log10(margins.min())),
            "sharpness_median": float(np.median(sp.top)),
            "exceptional_steps_per_point": int((sp.values > 0).sum(1).min()),
            "comp_gd_logdet": [float(v) for v in comp["gd"][0]], "comp_sgd_logdet": [float(v) for v in comp["sgd"][0]],
            "comp_singular": int(comp["gd"][1].sum() + comp["sgd"][1].sum()),
            "ball_same_pattern": bool(same_pattern), "ball_radius": radius, "dead_ball_radius": dradius,
            "ball_candidates": int(region.candidates.size),
            "ball_persistent": int(region.persistent.sum()), "ball_min_ratio": _ratio(region.min_ratio),
            "dead_top_preactivation": dead_top, "dead_same_pattern": bool(dead_same),
            "dead_candidates": int(dregion.candidates.size), "dead_persistent": int(dregion.persistent.sum()),
            "dead_exceptional_steps": _unique(dregion.steps), "dead_min_ratio": _ratio(dregion.min_ratio),
            "dead_singular_at_eta_1": int(at_one.singular.sum()),
            "dead_collapse_ratio": after / before if before > 0 else float("nan"),
        }
        arrays = {
            "eigs": sp.values, "logdet_gd": scans["gd_random"].log_abs_det,
            "margin_gd": scans["gd_random"].margin, "logdet_sgd": np.stack(sgd_logdet),
            "margin_sgd": np.stack(sgd_margin), "logdet_grid": scans["gd_grid"].log_abs_det,
            "comp_logdet": np.stack([comp["gd"][0], comp["sgd"][0]]),
        }
        return row, arrays

    # -- the path (figure) ---------------------------------------------------------------
    def _path(self, arch, loss_name, X, y, cfg) -> tuple[dict, dict]:
        Y = F.one_hot(y, 10).to(X.dtype)
        T = Y if loss_name == "mse" else y
        loss_fn = mse_sum if loss_name == "mse" else cross_entropy_sum
        side, width, seed = cfg["side"], cfg["width"], cfg["seed"]
        s = torch.linspace(0, 1, cfg["path_points"], dtype=torch.float64)
        out, info = {}, {}
        for act in cfg["activations"]:
            model = make_small_net(arch, act, side, 10, seed, width)
            a, b = (_flat(make_small_net(arch, act, side, 10, seed * 7919 + 1 + k, width)) for k in (0, 1))
            path = (1 - s)[:, None] * a + s[:, None] * b
            sp = Spectra(ModelLoss(model, loss_fn, X, T), path, cfg["dense_max"], cfg["lanczos_k"], seed)
            pats = _patterns(model, ParameterFlattener(model), path, X)
            out[f"path_eigs_{act}"] = sp.values
            info[act] = {"pattern_changes": int(sum(not torch.equal(p, q) for p, q in zip(pats[:-1], pats[1:])))
                         if act in KINKED else 0,
                         "max_step_change": float(np.abs(np.diff(sp.values, axis=0)).max())}
        out["path_s"] = s.numpy()
        return out, info

    # -- saddle avoidance ----------------------------------------------------------------
    def _saddle(self, X, y, cfg, rng) -> tuple[dict, dict]:
        Y = F.one_hot(y, 10).to(X.dtype)
        model = SmallMLP(X.shape[1], (cfg["saddle_width"],), 10, cfg["saddle_activation"], cfg["seed"])
        flat = ParameterFlattener(model)
        loss = ModelLoss(model, mse_sum, X, Y)
        parts = {k: torch.zeros(s, dtype=torch.float64) for k, s in zip(flat.names, flat.shapes)}
        parts[model.output_bias] = Y.mean(0)  # the zero hidden layer, the output bias at the mean target
        saddle = flat.flatten(parts)
        H = BatchedModelHessian(loss, saddle[None]).dense()[0]
        eig = torch.linalg.eigvalsh(0.5 * (H + H.T)).numpy()
        grad_norm = float(torch.linalg.vector_norm(module_gd_map(loss, saddle[None], 1.0)[0] - saddle))
        L_s = float(_values(loss, saddle[None])[0])
        lam_max, lam_min = float(eig[-1]), float(eig[0])
        eta_star = 1.0 / lam_max
        S, steps = cfg["saddle_starts"], cfg["saddle_steps"]
        u = torch.as_tensor(rng.standard_normal((S, loss.dim)))
        starts = saddle + cfg["saddle_radius"] * u / torch.linalg.vector_norm(u, dim=1, keepdim=True)
        arms = {"random": torch.as_tensor(rng.uniform(0.25, 1.9, S) / lam_max),
                "singular": torch.full((S,), eta_star, dtype=torch.float64)}
        record = np.unique(np.geomspace(1, steps, 40).astype(int))
        arrays, out = {"saddle_record_steps": np.concatenate([[0], record])}, {}
        # Both arms from the same starts (paired), advanced together in one vectorised map.
        th, eta = torch.cat([starts, starts]), torch.cat(list(arms.values()))
        dist = [torch.linalg.vector_norm(th - saddle, dim=1).numpy()]
        for t in range(1, steps + 1):
            th = module_gd_map(loss, th, eta)
            if t in record:
                dist.append(torch.linalg.vector_norm(th - saddle, dim=1).numpy())
        dist = np.stack(dist, 1)
        final_all = _values(loss, th).numpy()
        for i, arm in enumerate(arms):
            rows = slice(i * S, (i + 1) * S)
            final, dist_T = final_all[rows], dist[rows, -1]
            finite = np.isfinite(final)
            escaped = ~(dist_T < cfg["escape_distance"])  # NaN (diverged) counts as escaped
            iv = binomial_interval(int(escaped.sum()), S)
            out[arm] = {"escaped": int(escaped.sum()), "starts": S,
                        "near_saddle": int((dist_T <= cfg["saddle_radius"]).sum()),
                        "loss_below_saddle": int((final < 0.99 * L_s).sum()),
                        "diverged": int((~finite).sum()), "interval": iv.as_list(),
                        "final_loss_median": float(np.median(final[finite])) if finite.any() else float("nan")}
            arrays[f"saddle_dist_{arm}"] = dist[rows]
            arrays[f"saddle_eta_{arm}"] = arms[arm].numpy()
        # eta* is singular at the saddle and (a check on 8 starts) not at the starts.
        at_saddle = scan_step_sizes(eig[None], np.array([[eta_star]]))
        Hs = BatchedModelHessian(loss, starts[:8]).dense()
        es = torch.linalg.eigvalsh(0.5 * (Hs + Hs.transpose(-1, -2))).numpy()
        at_starts = scan_step_sizes(es, np.full((es.shape[0], 1), eta_star))
        out.update({"grad_norm": grad_norm, "loss": L_s, "lambda_min": lam_min, "lambda_max": lam_max,
                    "eta_star": eta_star, "margin_at_saddle": float(at_saddle.margin[0, 0]),
                    "singular_at_saddle": bool(at_saddle.singular[0, 0]),
                    "min_margin_at_starts": float(at_starts.margin.min()), "dim": loss.dim})

        # The quartic contrast: starts on 2 < |t| < 6, eta = 1/2 against random eta in (0.05, 0.95).
        q = Quartic1D()
        t0 = torch.as_tensor(rng.uniform(2, 6, S) * rng.choice([-1.0, 1.0], S))
        quart = {}
        for arm, eta in (("exceptional", torch.full((S,), 0.5, dtype=torch.float64)),
                         ("random", torch.as_tensor(rng.uniform(0.05, 0.95, S)))):
            t = t0.clone()
            for _ in range(steps):
                t = q.gd_map(t, eta)
            at_max = (t.abs() <= 1e-12).numpy()
            quart[arm] = {"at_maximum": int(at_max.sum()), "starts": S,
                          "interval_at_maximum": binomial_interval(int(at_max.sum()), S).as_list(),
                          "interval_escaped": binomial_interval(int((~at_max).sum()), S).as_list()}
        pts = torch.as_tensor(np.concatenate([[3.0], rng.uniform(2.05, 6, 7)]))
        inside = torch.as_tensor(np.concatenate([[1.0], rng.uniform(0.1, 1.9, 7)]))
        lam_min_q = 1.0 / cfg["eta_max"]
        quart["exceptional_outside"] = _unique(region_spectrum(q.hessian_1d(pts)[:, None].numpy(), lam_min_q).steps)
        quart["exceptional_inside"] = _unique(region_spectrum(q.hessian_1d(inside)[:, None].numpy(), lam_min_q).steps)
        out["quartic"] = quart
        return arrays, out

    def compute(self, config: dict, ctx: Context):
        X, y = digits_inputs(config["seed"], config["n_train"], config["side"])
        rng = np.random.default_rng(config["seed"])
        rows, arrays = [], {}
        stacks: dict[str, list] = {}
        for arch in config["archs"]:
            for act in config["activations"]:
                for loss_name in config["losses"]:
                    row, arr = self._config_run(arch, act, loss_name, X, y, config, rng)
                    rows.append(row)
                    for k, v in arr.items():
                        stacks.setdefault(k, []).append(v)
        dmax = max(v.shape[-1] for v in stacks["eigs"])
        arrays["eigs"] = np.stack([np.pad(v, ((0, 0), (0, dmax - v.shape[-1])), constant_values=np.nan)
                                   for v in stacks.pop("eigs")])
        arrays.update({k: np.stack(v) for k, v in stacks.items()})
        path_arrays, path_info = self._path(config["archs"][0], config["losses"][0], X, y, config)
        arrays.update(path_arrays)
        saddle_arrays, saddle = self._saddle(X, y, config, rng)
        arrays.update(saddle_arrays)
        summary = {
            "configs": [[r["arch"], r["activation"], r["loss"]] for r in rows],
            "table": rows,
            "path": {"arch": config["archs"][0], "loss": config["losses"][0], **path_info},
            "saddle": saddle,
            "n_train": int(X.shape[0]),
        }
        return arrays, summary

    # -- claims ----------------------------------------------------------------------------
    def claims(self, s: dict, config: dict) -> list[Claim]:
        rows = s["table"]
        out: list[Claim] = []
        by = {}
        for r in rows:
            by.setdefault((r["arch"], r["activation"]), []).append(r)
        for (arch, act), rs in by.items():
            pairs, sing = sum(r["pairs"] for r in rs), sum(r["singular"] for r in rs)
            low = min(r["min_log10_margin"] for r in rs)
            iv = binomial_interval(sing, pairs)
            losses = ", ".join(r["loss"] for r in rs)
            r0 = rs[0]
            out.append(holds(
                f"{arch} / {act}: no sampled (point, eta) pair makes the GD, SGD or {r0['steps']}-step map singular",
                SRC, "0 numerically singular pairs", f"{sing} of {pairs}",
                sing == 0,
                "exact: pairs with sigma_min(I - eta H) <= d eps sigma_max(I - eta H) (numpy matrix_rank tolerance) "
                "== 0",
                f"losses {losses}; {r0['points']} random points x {r0['step_sizes_per_point']} step sizes "
                f"({config['eta_grid']} on a log grid, {config['random_etas']} log-uniform in "
                f"[{config['eta_min']:g}, {config['eta_max']:g}]), SGD maps on {r0['sgd_batches']} minibatch(es) of "
                f"{config['batch_size']}, GD and SGD compositions of {r0['steps']} steps; smallest sigma_min/tol "
                f"= 10^{low:.1f}; singular fraction 95% upper bound {iv.high:.2g} (Clopper-Pearson); d = {r0['dim']}, "
                f"spectra {r0['method']}"))
        for arch in config["archs"]:
            an = [r for r in rows if r["arch"] == arch and r["activation"] in ANALYTIC_ACTIVATIONS]
            if an:
                pers = sum(r["ball_persistent"] for r in an)
                cand = sum(r["ball_candidates"] for r in an)
                ratio = min(r["ball_min_ratio"] for r in an)
                out.append(holds(
                    f"{arch}, analytic activations: exceptional step sizes move with the point (no eta is "
                    "exceptional on a ball)", SRC,
                    f"0 persistent eigenvalues; every eigenvalue moves >= {MOVE_FACTOR:g} x rounding",
                    f"{pers} persistent of {cand}; least move {ratio:.3g} x rounding",
                    pers == 0 and ratio >= MOVE_FACTOR,
                    f"exact: eigenvalues >= 1/eta_max at a random point found at all {config['ball_points']} points "
                    f"at distance {config['ball_radius']:g} to the rounding level d eps ||H|| == 0, and "
                    f"min displacement / rounding >= {MOVE_FACTOR:g}",
                    f"{', '.join(sorted({r['activation'] for r in an}))} x {', '.join(sorted({r['loss'] for r in an}))}"
                    "; the displacement grows with the radius (continuous, not constant)"))
            kk = [r for r in rows if r["arch"] == arch and r["activation"] in KINKED]
            if kk:
                pers = sum(r["ball_persistent"] for r in kk)
                same = sum(r["ball_same_pattern"] for r in kk)
                ratio = min(r["ball_min_ratio"] for r in kk)
                out.append(holds(
                    f"{arch}, ReLU / leaky ReLU at random points: inside one activation pattern the eigenvalues "
                    "still move (no eta exceptional on the ball)", SRC,
                    "0 persistent eigenvalues on balls with one activation pattern",
                    f"{pers} persistent; {same} of {len(kk)} balls kept one pattern; least move {ratio:.3g} x rounding",
                    pers == 0 and same == len(kk),
                    "exact: every ball keeps one activation pattern on the data, and persistent eigenvalues "
                    "(>= 1/eta_max, equal at every ball point to d eps ||H||) == 0",
                    "within a pattern the network is a polynomial in the parameters, so its Hessian is not "
                    "constant; what is constant is the Hessian in the directions of dead units (eigenvalue 0, "
                    f"no step size); ball radius {min(r['ball_radius'] for r in kk):g} (divided by 10 until the "
                    "ball kept one pattern)"))
        relu_mse = [r for r in rows if r["activation"] == "relu" and r["loss"] == "mse"]
        others = [r for r in rows if not (r["activation"] == "relu" and r["loss"] == "mse")]
        if relu_mse or others:
            ok_relu = all(r["dead_exceptional_steps"]
                          and all(abs(v - 1.0) <= 1e-12 for v in r["dead_exceptional_steps"])
                          and r["dead_singular_at_eta_1"] == config["ball_points"] + 1
                          and r["dead_collapse_ratio"] <= 1e-6 and r["dead_same_pattern"] for r in relu_mse)
            ok_other = all(not r["dead_exceptional_steps"] for r in others)
            meas = "; ".join(f"{r['arch']}/relu/mse: {r['dead_exceptional_steps']}, bias spread after/before "
                             f"{r['dead_collapse_ratio']:.2g}" for r in relu_mse) or "relu/mse not run"
            others_hit = [f"{r['arch']}/{r['activation']}/{r['loss']}: {r['dead_exceptional_steps']}"
                          for r in others if r["dead_exceptional_steps"]]
            meas += "; others: " + (", ".join(others_hit) if others_hit else "none")
            least = min(others, key=lambda r: r["dead_min_ratio"]) if others else None
            out.append(holds(
                "ReLU, squared loss, last hidden layer dead on the data (an open region): eta = 1 is exceptional "
                "there and one GD step collapses it; no exceptional eta for cross-entropy, leaky ReLU, sigmoid, GELU",
                "spec stability.md s.1 (exceptional eta: 1/eta an eigenvalue on an open region)",
                ("relu/mse: [1.0] for every architecture; " if relu_mse else "") + "every other combination: none",
                meas, ok_relu and ok_other,
                "exact: relu/mse: the persistent eigenvalues are 1 (to 1e-12), det(I - H) is numerically singular at "
                "every ball point, and the output bias spread after one step at eta = 1 is <= 1e-6 x before; "
                "others: no persistent eigenvalue",
                "the theorem allows it: countably many exceptional eta; the ReLU network's counterpart of the "
                "quartic's eta = 1/2 on |t| > 2; random eta never hit it (rows above)"
                + (f"; least-moving eigenvalue elsewhere: {least['arch']}/{least['activation']}/{least['loss']}, "
                   f"{least['dead_min_ratio']:.3g} x rounding (a nearly dead smooth unit still responds)"
                   if least else "")))
        q = s["saddle"]["quartic"]
        out.append(holds("contrast, the 1-D quartic (gdmap-1d): eta = 1/2 is exceptional on |t| > 2, none on |t| < 2",
                         "spec stability.md s.2", [[0.5], []], [q["exceptional_outside"], q["exceptional_inside"]],
                         q["exceptional_outside"] == [0.5] and q["exceptional_inside"] == [],
                         "exact: persistent eigenvalues of L'' over 8 points on 2 < |t| < 6 give [0.5]; over 8 "
                         "points on 0 < t < 2 none"))
        sd = s["saddle"]
        out.append(holds(
            f"the all-zero hidden layer of a two-layer {config['saddle_activation']} network is a strict saddle",
            SRC_SADDLE, "grad = 0, lambda_min(H) < 0",
            f"|grad| {sd['grad_norm']:.2g}, lambda_min {sd['lambda_min']:.4g}",
            sd["grad_norm"] <= 1e-12 and sd["lambda_min"] < 0,
            "exact: ||grad L|| <= 1e-12 and the smallest Hessian eigenvalue < 0",
            f"d = {sd['dim']}, lambda_max {sd['lambda_max']:.4g}; eta* = 1/lambda_max = {sd['eta_star']:.4g} is "
            f"singular at the saddle (sigma_min/tol {sd['margin_at_saddle']:.2g}) and not at the starts "
            f"(smallest sigma_min/tol {sd['min_margin_at_starts']:.3g})"))
        for arm, what in (("random", "a random eta per start, U(0.25, 1.9) / lambda_max(saddle)"),
                          ("singular", "eta* = 1/lambda_max(H(saddle)), singular at the saddle only")):
            a = sd[arm]
            lo, hi = a["interval"]
            out.append(statistical(
                f"GD from random starts near the network's strict saddle escapes ({what})", SRC_SADDLE,
                "escape with probability 1", statistic="fraction of starts whose final distance from the saddle "
                f"is >= {config['escape_distance']:g}", estimate=a["escaped"] / a["starts"], low=lo,
                high=hi, n=a["starts"], margin=ESCAPE_MARGIN, test="greater", method="clopper-pearson",
                detail=f"{config['saddle_steps']} steps from distance {config['saddle_radius']:g}; "
                f"{a['near_saddle']} ended within that distance, {a['diverged']} diverged, "
                f"{a['loss_below_saddle']} ended with a loss 1% or more below the saddle's; median final loss "
                f"{a['final_loss_median']:.4g} (saddle {sd['loss']:.4g})",
                undecided=f"the interval straddles {ESCAPE_MARGIN}: more starts (--saddle-starts) or steps would "
                "decide it"))
        for arm, what, key, claim in (
                ("exceptional", "eta = 1/2 (exceptional on |t| > 2)", "interval_at_maximum",
                 "the quartic's exceptional eta = 1/2 sends every start on 2 < |t| < 6 onto the local maximum"),
                ("random", "random eta in (0.05, 0.95)", "interval_escaped",
                 "the quartic at random eta: starts on 2 < |t| < 6 avoid the local maximum")):
            a = q[arm]
            k = a["at_maximum"] if arm == "exceptional" else a["starts"] - a["at_maximum"]
            lo, hi = a[key]
            out.append(statistical(
                claim, "spec stability.md s.2 and s.5", "probability 1",
                statistic=f"fraction of starts {'on' if arm == 'exceptional' else 'away from'} t = 0 "
                f"(|t_T| <= 1e-12) after {config['saddle_steps']} steps, {what}", estimate=k / a["starts"],
                low=lo, high=hi, n=a["starts"], margin=ESCAPE_MARGIN, test="greater", method="clopper-pearson",
                undecided=f"the interval straddles {ESCAPE_MARGIN}: more starts (--saddle-starts) would decide it"))
        return out


def _cmax(sp: Spectra) -> float:
    """Above this every point's partial (Lanczos) spectrum is complete: 0 for dense spectra."""
    return 0.0 if sp.complete_from is None else float(np.max(sp.complete_from))


def _ratio(x: float) -> float:
    """JSON-safe: inf (no candidates) becomes a large finite number."""
    return float(x) if math.isfinite(x) else 1e300


def _unique(steps: np.ndarray) -> list[float]:
    """Distinct exceptional step sizes (a repeated eigenvalue gives one step), to 12 digits."""
    return sorted({float(np.round(v, 12)) for v in np.asarray(steps)})


EXPERIMENT = NonSingularity()
