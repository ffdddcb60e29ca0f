"""Smoothness of the activation and speed of convergence (paper Fig. 2, appendix A.2).

Every depth (VGG11/13/16/19 of spec section 2) x activation (ReLU, GELU, Softplus beta 100
and 1000) x BatchNorm off/on is trained with Adam (paper: lr 1e-3, batch 128, 20 epochs,
seed 19 reset before each model). Here every arm runs ``--n-seeds`` *paired* seeds: seed
``s`` gives every model the same initial convolution weights (activations and BatchNorm
draw nothing from the RNG) and the same batches, so a per-seed difference between ReLU and
GELU is a difference the activation made. Recorded per epoch: mean train loss, validation
loss and accuracy.

Per seed, per depth and BatchNorm setting, the statistic is the **area between the loss
curves**: ``A = mean over epochs of (train loss ReLU - train loss GELU)`` (nats; > 0 when
GELU is ahead). Unlike a time-to-target it counts the whole run, and a curve that never
reaches a target does not censor it. The claims, each from its own runs:

* without BN, GELU converges faster than ReLU at every depth: mean A > 0 (paired bootstrap
  95% interval over seeds, one row per depth);
* without BN, the gap grows with depth: per seed ``A(deepest) - A(shallowest)`` > 0;
* with BN the difference disappears: mean A (with BN) within +-``--equivalence-margin``
  (an equivalence test; rows never compare the BN runs with the no-BN runs).

*What the rows measure.* Without BN, deep nets under PyTorch's default initialisation
(``U(+-1/sqrt(fan_in))``, a gain of about 1/sqrt(3)) pass almost no input signal to their
output: they start on a plateau at ``ln(classes)`` and leave it when Adam has grown the
weights. How long that takes depends on how much gradient reaches the first layer, and GELU
(slope 1/2 at 0) lets through less than ReLU: deep GELU nets can start *flatter*. So a
no-BN row measures smoothness and initialisation together, as the paper's Fig. 2 does. Each
row's detail gives, per activation, the first layer's gradient norm at initialisation (on
the seed's first batch) and the epoch at which each curve left the plateau (first mean
train loss below ``0.9 ln(classes)``; ``epochs + 1`` when never), reported, not tested.

Defaults are the paper's except ``--n-seeds 8`` (paper: one seed); CIFAR-10 with
``--data-dir``, else the offline digits. The quick configuration and every deviation from
the paper are listed in the run's summary (``deviations``). Seeds of one arm train as one
stack (`ndgm.training.train_stack`, ``--stack-seeds``) and the arms run in parallel worker
processes (``--workers``).
"""

from __future__ import annotations

import copy
import dataclasses
import shutil

import numpy as np
import torch

from ..analysis.stats import bootstrap_interval
from ..claims import INCONCLUSIVE, Claim, not_run, statistical
from ..device import resolve_device, resolve_dtype
from ..errors import NdgmError
from ..nets.vgg import PAPER_ACTIVATIONS, VGG_CONFIGS, SmallVGG, make_activation
from ..training import ModelStack, checkpoint_folder, epoch_generator, seeded
from .base import Context, Experiment, Param
from .deep_common import common_deep_params, load_data, resolve_workers, run_jobs

# A curve has left the initial plateau at ln(classes) once its epoch mean is 10% below it.
PLATEAU_FRACTION = 0.9
SOURCE = "paper Fig. 2 / A.2"


def epochs_to_target(curve: np.ndarray, target: float) -> float:
    """First fractional epoch (1-based, linear interpolation) with ``curve <= target``;
    ``len(curve) + 1`` when it never gets there (censored)."""
    curve = np.asarray(curve, dtype=np.float64)
    hit = np.flatnonzero(curve <= target)
    if hit.size == 0:
        return float(curve.size + 1)
    k = int(hit[0])
    if k == 0:
        return 1.0
    a, b = curve[k - 1], curve[k]
    frac = (a - target) / (a - b) if a != b else 1.0
    return float(k + frac)  # epochs are 1-based: index k-1 is epoch k


def area_between(loss_relu: np.ndarray, loss_gelu: np.ndarray) -> np.ndarray:
    r"""Per seed, the mean over epochs of ``loss_relu - loss_gelu`` (the last axis is epochs).

    :math:`A = \frac1E \sum_{e=1}^{E} (L^{\mathrm{ReLU}}_e - L^{\mathrm{GELU}}_e)`: the area between
    the two curves per epoch, positive when GELU's loss is lower.
    """
    return np.mean(np.asarray(loss_relu, np.float64) - np.asarray(loss_gelu, np.float64), axis=-1)


def _key(bn: bool, depth: str, act: str | None = None) -> str:
    return f"{'bn' if bn else 'nobn'}/{depth}" + (f"/{act}" if act else "")


def _tag(job: dict) -> str:
    return f"{job['depth']}-{job['activation']}-{'bn' if job['batch_norm'] else 'nobn'}"


def initial_gradients(models: list, data, seeds: list[int], batch_size: int, dtype: torch.dtype) -> dict:
    """Per model, at its initial weights, on the first batch its seed draws (no augmentation):
    the cross-entropy and the gradient norms of the first convolution's weight and of all
    parameters. Computed on copies, so BatchNorm's running statistics are left alone."""
    n = data.n_train
    bs = n if batch_size == 0 else min(batch_size, n)
    out = {"init_loss": [], "init_grad_first": [], "init_grad_total": []}
    for model, seed in zip(models, seeds):
        m = copy.deepcopy(model).train()
        order = torch.randperm(n, generator=epoch_generator(seed, 0)).to(data.train_y.device)
        x, y = data.batch(order[:bs], dtype=dtype)
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        first = next(p for p in m.parameters() if p.ndim == 4)  # the first convolution's weight
        out["init_loss"].append(float(loss.detach()))
        out["init_grad_first"].append(float(first.grad.norm()))
        out["init_grad_total"].append(float(torch.sqrt(sum((p.grad ** 2).sum() for p in m.parameters()))))
    return out


def train_arm(job: dict) -> dict:
    """One arm (depth, activation, BatchNorm) with all its seeds; module level, so a worker
    process can run it. Returns per-seed curves ``(K, epochs)`` and the initial gradients."""
    from .. import training  # looked up per call: the resume test wraps ndgm.training's functions

    config = job["config"]
    device, dtype = resolve_device(job["device"]), resolve_dtype(config["dtype"])
    data = load_data(config, normalisation="cifar").to(device)
    seeds, E = job["seeds"], config["epochs"]
    depth, act, bn = job["depth"], job["activation"], job["batch_norm"]
    models = [seeded(s, lambda: SmallVGG(depth, act, bn, data.num_classes)).to(device, dtype) for s in seeds]
    out = initial_gradients(models, data, seeds, config["batch_size"], dtype)
    kw = dict(epochs=E, batch_size=config["batch_size"], augment=config["augment"], resume=config["resume"],
              progress=job["progress"], dtype=dtype)
    tag = _tag(job)
    if config["stack_seeds"]:
        stack = ModelStack(models)
        opt = torch.optim.Adam(stack.parameters(), lr=config["lr"])
        hists = training.train_stack(stack, data, opt, seeds=seeds, checkpoint=job["folder"] / f"{tag}.pt",
                                     desc=tag, **kw)
    else:
        hists = [training.train(m, data, torch.optim.Adam(m.parameters(), lr=config["lr"]), seed=s,
                                checkpoint=job["folder"] / f"{tag}-seed{s}.pt", desc=f"{tag} seed {s}", **kw)
                 for m, s in zip(models, seeds)]
    for k in ("train_loss", "val_loss", "val_acc"):
        out[k] = np.array([getattr(h, k) for h in hists], dtype=np.float64)
    return out


class Activations(Experiment):
    name = "activations"
    title = "Smooth activations converge faster than ReLU without BatchNorm"
    source = "paper Fig. 2 / appendix A.2"
    full_requires = ("data_dir", "gpu")
    params = (
        Param("depths", ("vgg11", "vgg13", "vgg16", "vgg19"), "strs", "comma-separated VGG configurations "
              "(paper: all four; quick: vgg11 and vgg13 -- at the quick size VGG19 without BN never leaves the "
              "initial plateau, so its rows would compare untrained nets)", choices=tuple(VGG_CONFIGS), distinct=True,
              quick=("vgg11", "vgg13")),
        Param("activations", tuple(PAPER_ACTIVATIONS), "strs", "comma-separated activations: relu, gelu, softplusBETA "
              "(paper: relu,gelu,softplus100,softplus1000; the claims compare relu and gelu)", quick=("relu", "gelu"),
              distinct=True),
        Param("batch_norm", "both", "str", "BatchNorm: off, on or both (paper: both)", choices=("off", "on", "both")),
        Param("epochs", 20, "int", "epochs per model (paper: 20)", quick=10),
        Param("batch_size", 128, "int", "minibatch size, 0 = full batch (paper: 128)", minimum=0, quick=32),
        Param("lr", 1e-3, "pos", "Adam learning rate (paper: 1e-3)"),
        Param("seed", 19, "int", "first seed; seeds seed .. seed + n_seeds - 1 (paper: 19, one seed)", minimum=0),
        Param("n_seeds", 8, "int", "paired seeds per arm (paper: 1)", minimum=2),
        Param("augment", True, "bool", "RandomCrop(32, pad 4) + horizontal flip (paper: on)", quick=False),
        Param("equivalence_margin", 0.05, "pos", "BN rows: |mean area between the ReLU and GELU curves| must lie "
              "within this many nats (0.05 = about 2% of ln 10)"),
        Param("stack_seeds", True, "bool", "train the seeds of an arm as one stack (vmap over seeds) rather than "
              "one by one"),
        *common_deep_params(train_size_quick=512, val_size_quick=200),
    )
    overrides = {"dtype": "float32"}
    threads = None  # run_jobs sets them per worker
    figures = ("activations_train_loss.png", "activations_val_loss.png", "activations_gap.png")

    def validate(self, config):
        for a in config["activations"]:
            try:
                make_activation(a)
            except NdgmError as e:
                raise NdgmError(f"--activations: {e}") from None

    @staticmethod
    def seeds(config: dict) -> list[int]:
        return [config["seed"] + i for i in range(config["n_seeds"])]

    def deviations(self, config: dict, data_name: str, n_train: int) -> list[str]:
        """What differs from the paper's protocol (appendix A.2), one line each."""
        params = {p.name: p for p in self.params}
        out = []
        if data_name != "cifar10":
            out.append(f"data: {n_train} {data_name} images (8 x 8, each pixel repeated 4 x 4 to 32 x 32, three equal "
                       "channels) instead of CIFAR-10's 50,000")
        elif n_train != 50000:
            out.append(f"data: the first {n_train} CIFAR-10 training images instead of 50,000")
        for name in ("depths", "activations", "epochs", "batch_size", "lr", "augment", "batch_norm"):
            p = params[name]
            if config[name] != p.value():
                out.append(f"{name}: {p.show(config[name])} (paper: {p.show(p.value())})")
        out.append(f"seeds: {config['n_seeds']} paired seeds from {config['seed']} (paper: one, seed 19)")
        return out

    def compute(self, config: dict, ctx: Context):
        depths, acts = config["depths"], config["activations"]
        bns = {"off": [False], "on": [True], "both": [False, True]}[config["batch_norm"]]
        data = load_data(config, normalisation="cifar")
        seeds, E = self.seeds(config), config["epochs"]
        folder = checkpoint_folder(self.name, config)
        arms = [(i, j, k) for i in range(len(bns)) for j in range(len(depths)) for k in range(len(acts))]
        # deepest first: the longest jobs start first and the pool ends together
        arms.sort(key=lambda a: (-len(VGG_CONFIGS[depths[a[1]]]), a))
        jobs = [{"config": config, "device": str(ctx.device), "seeds": seeds, "depth": depths[j],
                 "activation": acts[k], "batch_norm": bns[i], "folder": folder, "progress": False} for i, j, k in arms]
        workers, threads = resolve_workers(config["workers"], config["threads"], len(jobs), ctx.device)
        if workers == 1:
            for job in jobs:
                job["progress"] = ctx.progress
        results = run_jobs(train_arm, jobs, workers, threads, progress=ctx.progress and workers > 1,
                           desc="activations arms")
        shutil.rmtree(folder, ignore_errors=True)  # finished: the run store holds the curves

        shape = (len(bns), len(depths), len(acts), len(seeds))
        arrays = {k: np.full(shape + (E,), np.nan) for k in ("train_loss", "val_loss", "val_acc")}
        arrays.update({k: np.full(shape, np.nan) for k in ("init_loss", "init_grad_first", "init_grad_total")})
        for (i, j, k), res in zip(arms, results):
            for name in arrays:
                arrays[name][i, j, k] = res[name]
        spe = -(-data.n_train // (data.n_train if config["batch_size"] == 0 else min(config["batch_size"], data.n_train)))
        summary = {"depths": depths, "activations": acts, "batch_norm": bns, "seeds": seeds, "data": data.name,
                   "n_train": data.n_train, "n_val": data.n_val, "steps_per_epoch": spe, "steps": spe * E,
                   "workers": workers, "threads": threads,
                   "deviations": self.deviations(config, data.name, data.n_train)}
        summary.update(self.summarise(arrays, depths, acts, bns, data.num_classes))
        return arrays, summary

    @staticmethod
    def summarise(arrays: dict, depths, acts, bns, num_classes: int) -> dict:
        """Per (BN, depth): the per-seed areas between ReLU and GELU (``area``); per (BN, depth,
        activation): per-seed plateau exits, initial gradients and final train losses."""
        tl = np.asarray(arrays["train_loss"])  # (bn, depth, act, seed, epoch)
        plateau = PLATEAU_FRACTION * float(np.log(num_classes))
        out: dict = {"plateau_loss": plateau, "area": {}, "plateau_exit": {}, "final_train_loss": {},
                     "final_val_acc": {}, "init_grad_first": {}, "init_grad_total": {}}
        for i, bn in enumerate(bns):
            for j, d in enumerate(depths):
                for k, a in enumerate(acts):
                    key = _key(bn, d, a)
                    out["plateau_exit"][key] = [epochs_to_target(c, plateau) for c in tl[i, j, k]]
                    out["final_train_loss"][key] = [float(v) for v in tl[i, j, k, :, -1]]
                    out["final_val_acc"][key] = [float(v) for v in np.asarray(arrays["val_acc"])[i, j, k, :, -1]]
                    for name in ("init_grad_first", "init_grad_total"):
                        out[name][key] = [float(v) for v in np.asarray(arrays[name])[i, j, k]]
                if "relu" in acts and "gelu" in acts:
                    r, g = acts.index("relu"), acts.index("gelu")
                    out["area"][_key(bn, d)] = [float(v) for v in area_between(tl[i, j, r], tl[i, j, g])]
        return out

    def claims(self, s: dict, config: dict) -> list[Claim]:
        depths = s["depths"]
        if not s.get("area"):
            return [not_run("GELU vs ReLU comparisons", SOURCE, "needs relu and gelu in --activations")]
        out: list[Claim] = []
        steps = f"{s['steps']} Adam steps per model ({config['epochs']} epochs of {s['steps_per_epoch']})"
        if False in s["batch_norm"]:
            for d in depths:
                iv = bootstrap_interval(s["area"][_key(False, d)])
                out.append(statistical(
                    f"without BN, GELU converges faster than ReLU ({d})", SOURCE,
                    "mean area between the curves > 0 (GELU's loss lower)",
                    statistic="mean over seeds of A = mean over epochs of train loss(ReLU) - train loss(GELU), nats",
                    **iv.claim_kwargs(), margin=0.0, test="greater", values=s["area"][_key(False, d)],
                    detail=f"{steps}; " + self._context(s, False, d),
                    undecided="the interval straddles 0: more seeds or a longer run (--epochs) would decide"))
            if len(depths) > 1:
                deep, shallow = depths[-1], depths[0]
                diff = [a - b for a, b in zip(s["area"][_key(False, deep)], s["area"][_key(False, shallow)])]
                iv = bootstrap_interval(diff)
                out.append(statistical(
                    f"without BN, GELU's lead grows with depth ({shallow} -> {deep})", SOURCE,
                    f"mean of A({deep}) - A({shallow}) > 0",
                    statistic=f"mean over seeds of A({deep}) - A({shallow}) (same seed), nats", **iv.claim_kwargs(),
                    margin=0.0, test="greater", values=diff,
                    detail=f"{steps}; mean A per depth: " + ", ".join(
                        f"{d} {np.mean(s['area'][_key(False, d)]):.3g}" for d in depths)
                    + "; a deep net's A includes its wait on the initial plateau (see the per-depth rows)",
                    undecided="the interval straddles 0: more seeds or a longer run (--epochs) would decide"))
        if True in s["batch_norm"]:
            m = float(config["equivalence_margin"])
            for d in depths:
                iv = bootstrap_interval(s["area"][_key(True, d)])
                out.append(statistical(
                    f"with BN the ReLU-GELU difference disappears ({d})", SOURCE,
                    f"|mean area between the curves| < {m:g} nats",
                    statistic="mean over seeds of A = mean over epochs of train loss(ReLU) - train loss(GELU) with "
                              "BN, nats", **iv.claim_kwargs(), margin=m, test="within",
                    values=s["area"][_key(True, d)], detail=f"{steps}; equivalence margin {m:g} nats "
                    "(--equivalence-margin); " + self._context(s, True, d),
                    undecided=f"the interval reaches past +-{m:g}: more seeds would decide"))
        return [self._unless_idle(c, s, config) for c in out]

    @staticmethod
    def _idle_cells(s: dict, claim: str) -> list[str]:
        """The (BN, depth) cells a row compares whose networks did not learn: for ReLU or GELU
        the median final train loss over seeds is still on the initial plateau (above
        ``plateau_loss``)."""
        idle = []
        for bn in s["batch_norm"]:
            if ("without BN" in claim) == bn:
                continue
            for d in s["depths"]:
                if f"({d})" not in claim and f"({d} -> " not in claim and f"-> {d})" not in claim:
                    continue
                for a in ("relu", "gelu"):
                    loss = float(np.median(s["final_train_loss"][_key(bn, d, a)]))
                    if loss > s["plateau_loss"]:
                        idle.append(f"{'BN' if bn else 'no BN'} {d} {a} (median final train loss {loss:.3g})")
        return idle

    def _unless_idle(self, row: Claim, s: dict, config: dict) -> Claim:
        """A comparison between networks that never left the initial plateau says nothing about
        convergence speed: such a row is inconclusive, whatever its interval, and says so."""
        idle = self._idle_cells(s, row.claim)
        if not idle or row.verdict == "not run":
            return row
        return dataclasses.replace(row, verdict=INCONCLUSIVE, detail=(
            f"the networks did not learn: {', '.join(idle)} stayed above the plateau loss "
            f"{s['plateau_loss']:.3g} after {config['epochs']} epochs, so the interval (which alone would read "
            f"{row.verdict}) compares two untrained nets; more epochs or the full configuration would decide. "
            + row.detail))

    @staticmethod
    def _context(s: dict, bn: bool, depth: str) -> str:
        """What else the runs of one (BN, depth) cell show: plateau exits, initial gradients,
        final losses and accuracies, per activation (means over seeds)."""
        parts = []
        for a in ("relu", "gelu"):
            key = _key(bn, depth, a)
            exits = np.asarray(s["plateau_exit"][key])
            parts.append(f"{a}: leaves the plateau (loss < {s['plateau_loss']:.3g}) at epoch "
                         f"{np.median(exits):.3g} (median), final train loss {np.mean(s['final_train_loss'][key]):.3g}, "
                         f"val acc {np.mean(s['final_val_acc'][key]):.2f}")
        r = np.asarray(s["init_grad_first"][_key(bn, depth, "relu")])
        g = np.asarray(s["init_grad_first"][_key(bn, depth, "gelu")])
        first = np.asarray(s["plateau_exit"][_key(bn, depth, "gelu")]) < np.asarray(s["plateau_exit"][_key(bn, depth, "relu")])
        parts.append(f"GELU left the plateau first in {int(first.sum())} of {first.size} seeds")
        parts.append(f"first-layer gradient at init GELU/ReLU {np.exp(np.mean(np.log(g / r))):.3g} (geometric mean "
                     "over seeds: below 1, GELU starts flatter)")
        return "; ".join(parts)


EXPERIMENT = Activations()
