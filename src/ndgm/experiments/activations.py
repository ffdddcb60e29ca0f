"""Smoothness of the activation and speed of convergence (paper Fig. 2, appendix A.2).

Every depth (VGG11/13/16/19 of spec section 2) x activation (ReLU, GELU, Softplus beta 100
and 1000) x BatchNorm off/on is trained with Adam (lr 1e-3, batch 128, 20 epochs in the
paper), the seed reset before each model so that models differ only in their activation.
Recorded per epoch: mean train loss, validation loss and accuracy.

The claims are computed from the curves, not read off a figure:

* *epochs to target*: the first (linearly interpolated, fractional) epoch at which the
  train-loss curve is at or below the target; a curve that never gets there is censored at
  ``epochs + 1``. The target is fixed before training as half the chance-level loss,
  ``0.5 * ln(classes)`` (1.15 on 10 classes; ``--target-fraction``, or ``--target-loss`` for
  an absolute value): every model starts at ``ln(classes)``, so the same fraction means the
  same progress on CIFAR-10 and on the digits. Without BatchNorm GELU should need fewer
  epochs than ReLU at every depth.
* *gap*: the mean over epochs of ``loss_ReLU - loss_GELU`` (the area between the two curves
  per epoch; positive = GELU ahead). Without BatchNorm it should grow with depth (deepest >
  shallowest); with BatchNorm it should shrink (mean |gap| with BN < mean gap without).

Defaults are the paper's (CIFAR-10 with ``--data-dir``); without ``--data-dir`` the offline
digits are used. The quick configuration: ReLU and GELU only (Softplus is exploratory in the
paper), 512 training images, no augmentation, one CPU thread, batch 8 for 25 epochs = 1600
Adam steps per model (the first version's 480 left VGG16/19 on the initial plateau) at lr
2.5e-4 = 1e-3 * sqrt(8 / 128), the usual square-root scaling of Adam's step for a 16x
smaller batch (at 1e-3 with batch 8-16 the deep models' escape from the plateau was erratic).
16 models, about 6 minutes on a 2-core CPU. Without BN, deep models first sit on the plateau
at ``ln(classes)``; when a claim fails, its detail gives the epochs at which each curve left it.
"""

from __future__ import annotations

import shutil

import numpy as np
import torch

from ..errors import NdgmError
from ..nets.vgg import PAPER_ACTIVATIONS, VGG_CONFIGS, SmallVGG, make_activation
from ..training import checkpoint_folder, seeded
from ..claims import Claim, legacy_claim
from .base import Context, Experiment, Param
from .deep_common import common_deep_params, load_data

# A curve has left the initial plateau at ln(classes) once it is 10% below it.
PLATEAU_FRACTION = 0.9


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


class Activations(Experiment):
    name = "activations"
    title = "Smooth activations converge faster than ReLU without BatchNorm"
    source = "paper Fig. 2 / appendix A.2"
    full_requires = ("data_dir", "gpu")
    params = (
        Param("depths", ("vgg11", "vgg13", "vgg16", "vgg19"), "strs", "comma-separated VGG configurations "
              "(paper: all four)", choices=tuple(VGG_CONFIGS), distinct=True),
        Param("activations", tuple(PAPER_ACTIVATIONS), "strs", "comma-separated activations: relu, gelu, softplusBETA "
              "(paper: relu,gelu,softplus100,softplus1000)", quick=("relu", "gelu"), distinct=True),
        Param("batch_norm", "both", "str", "BatchNorm: off, on or both (paper: both)", choices=("off", "on", "both")),
        Param("epochs", 20, "int", "epochs per model (paper: 20)", quick=25),
        Param("batch_size", 128, "int", "minibatch size, 0 = full batch (paper: 128)", minimum=0, quick=8),
        Param("lr", 1e-3, "pos", "Adam learning rate (paper: 1e-3; quick: 2.5e-4 = 1e-3 * sqrt(8 / 128), "
              "square-root scaling for the 16x smaller batch)", quick=2.5e-4),
        Param("seed", 19, "int", "seed reset before every model (paper: 19)", minimum=0),
        Param("augment", True, "bool", "RandomCrop(32, pad 4) + horizontal flip (paper: on)", quick=False),
        Param("target_fraction", 0.5, "pos", "epochs to target: target = this fraction of the chance-level "
              "loss ln(classes) (0.5: 1.15 on 10 classes)"),
        Param("target_loss", 0.0, "nonneg", "absolute train-loss target instead of --target-fraction (0 = use "
              "the fraction)"),
        *common_deep_params(train_size_quick=512, val_size_quick=200),
    )
    overrides = {"dtype": "float32"}
    threads = "threads"
    figures = ("activations_train_loss.png", "activations_val_loss.png", "activations_gap.png")

    def validate(self, config):
        for a in config["activations"]:
            try:
                make_activation(a)
            except NdgmError as e:
                raise NdgmError(f"--activations: {e}") from None
        if not 0 < config["target_fraction"] < 1:
            raise NdgmError(f"--target-fraction must lie in (0, 1), got {config['target_fraction']:g}")

    def compute(self, config: dict, ctx: Context):
        dtype, device, progress = ctx.dtype, ctx.device, ctx.progress
        depths, acts = config["depths"], config["activations"]
        bns = {"off": [False], "on": [True], "both": [False, True]}[config["batch_norm"]]
        data = load_data(config, normalisation="cifar").to(device)
        E = config["epochs"]
        shape = (len(bns), len(depths), len(acts), E)
        curves = {k: np.full(shape, np.nan) for k in ("train_loss", "val_loss", "val_acc")}
        folder = checkpoint_folder(self.name, config)
        from ..training import train  # looked up per run: the resume test wraps ndgm.training.train

        models = [(i, j, k) for i in range(len(bns)) for j in range(len(depths)) for k in range(len(acts))]
        for n, (i, j, k) in enumerate(models):
            bn, depth, act = bns[i], depths[j], acts[k]
            tag = f"{depth}-{act}-{'bn' if bn else 'nobn'}"
            model = seeded(config["seed"], lambda: SmallVGG(depth, act, bn, data.num_classes)).to(device, dtype)
            opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
            hist = train(model, data, opt, epochs=E, batch_size=config["batch_size"], seed=config["seed"],
                         augment=config["augment"], checkpoint=folder / f"{tag}.pt", resume=config["resume"],
                         progress=progress, desc=f"[{n + 1}/{len(models)}] {tag}", dtype=dtype)
            curves["train_loss"][i, j, k] = hist.train_loss
            curves["val_loss"][i, j, k] = hist.val_loss
            curves["val_acc"][i, j, k] = hist.val_acc
        shutil.rmtree(folder, ignore_errors=True)  # finished: the run store holds the curves

        summary = {"depths": depths, "activations": acts, "batch_norm": bns, "data": data.name,
                   "n_train": data.n_train, "n_val": data.n_val}
        summary.update(self.summarise(curves["train_loss"], depths, acts, bns, self.target(config, data.num_classes),
                                      data.num_classes))
        arrays = dict(curves)
        return arrays, summary

    @staticmethod
    def target(config: dict, num_classes: int) -> float:
        """The train loss compared by *epochs to target*: ``--target-loss`` when given, else
        ``target_fraction * ln(num_classes)`` -- a fraction of the loss of a uniform prediction,
        which is where every model starts, so the same target means the same progress on any
        data set."""
        if config.get("target_loss", 0.0) > 0:
            return float(config["target_loss"])
        return float(config["target_fraction"] * np.log(num_classes))

    @classmethod
    def summarise(cls, train_loss: np.ndarray, depths, acts, bns, target: float, num_classes: int) -> dict:
        """`analyse` at ``target`` plus, as ``plateau_epochs_{act}_{bn}``, the epochs at which
        each curve left the initial plateau (first at or below ``PLATEAU_FRACTION * ln C``)."""
        out = {"target_loss": float(target), "plateau_loss": PLATEAU_FRACTION * float(np.log(num_classes))}
        out.update(cls.analyse(train_loss, depths, acts, bns, target))
        plateau = cls.analyse(train_loss, depths, acts, bns, out["plateau_loss"])
        for key in [k for k in plateau if k.startswith("epochs_") and k != "epochs_to_target"]:
            out["plateau_" + key] = plateau[key]
        return out

    @staticmethod
    def analyse(train_loss: np.ndarray, depths, acts, bns, target: float) -> dict:
        """Epochs to target and ReLU-GELU gaps per (BatchNorm, depth)."""
        out: dict = {"epochs_to_target": {}, "final_train_loss": {}}
        for i, bn in enumerate(bns):
            for j, d in enumerate(depths):
                for k, a in enumerate(acts):
                    key = f"{d}/{a}/{'bn' if bn else 'nobn'}"
                    out["epochs_to_target"][key] = epochs_to_target(train_loss[i, j, k], target)
                    out["final_train_loss"][key] = float(train_loss[i, j, k, -1])
        if "relu" in acts and "gelu" in acts:
            r, g = acts.index("relu"), acts.index("gelu")
            for i, bn in enumerate(bns):
                sfx = "bn" if bn else "nobn"
                out[f"gap_{sfx}"] = [float(np.mean(train_loss[i, j, r] - train_loss[i, j, g]))
                                     for j in range(len(depths))]
                out[f"epochs_relu_{sfx}"] = [out["epochs_to_target"][f"{d}/relu/{sfx}"] for d in depths]
                out[f"epochs_gelu_{sfx}"] = [out["epochs_to_target"][f"{d}/gelu/{sfx}"] for d in depths]
        return out

    def claims(self, s: dict, config: dict) -> list[Claim]:
        src = "paper Fig. 2 / A.2"
        E = config["epochs"]
        target = s.get("target_loss", config.get("target_loss"))
        why_missing = "needs relu and gelu in --activations"
        if "gap_nobn" not in s and "gap_bn" not in s:
            return [legacy_claim("GELU vs ReLU comparisons", src, "-", "-", None, why_missing)]
        out = []
        depths = s["depths"]
        if "gap_nobn" in s:
            er, eg = s["epochs_relu_nobn"], s["epochs_gelu_nobn"]
            faster = all(g < r for g, r in zip(eg, er))
            out.append(legacy_claim(f"without BN, GELU reaches train loss {target:.3g} in fewer epochs "
                             "than ReLU at every depth", src, "epochs(GELU) < epochs(ReLU) for " + ",".join(depths),
                             f"GELU {_fmt(eg)} vs ReLU {_fmt(er)}", faster,
                             f"fractional epochs; {E + 1} = not reached in {E} epochs"
                             + ("" if faster else _plateau_note(s, E))))
            gap = s["gap_nobn"]
            if len(depths) > 1:
                grows = gap[-1] > gap[0]
                out.append(legacy_claim("without BN the ReLU-GELU gap grows with depth", src,
                                 f"gap({depths[-1]}) > gap({depths[0]})", f"gaps {_fmt(gap)} ({','.join(depths)})",
                                 grows, "gap = mean over epochs of train loss(ReLU) - train loss(GELU)"
                                 + ("" if grows else _plateau_note(s, E))))
        if "gap_nobn" in s and "gap_bn" in s:
            nob, wb = float(np.mean(s["gap_nobn"])), float(np.mean(np.abs(s["gap_bn"])))
            out.append(legacy_claim("with BN the ReLU-GELU gap shrinks", src, "mean |gap| with BN < mean gap without BN",
                             f"{wb:.4g} (BN) vs {nob:.4g} (no BN); per depth BN {_fmt(s['gap_bn'])}", wb < nob,
                             "" if wb < nob else _plateau_note(s, E).lstrip("; ")))
        return out



def _plateau_note(s: dict, E: int) -> str:
    """Where GELU is behind without BN: the epochs at which each curve left the initial
    plateau, which is what decides the comparison when a deep model sits on it for many epochs."""
    if "plateau_epochs_relu_nobn" not in s:
        return ""
    pr, pg = s["plateau_epochs_relu_nobn"], s["plateau_epochs_gelu_nobn"]
    late = [d for d, r, g in zip(s["depths"], pr, pg) if g > r]
    text = (f"; epochs to leave the initial plateau (loss < {s['plateau_loss']:.3g}): GELU {_fmt(pg)} vs "
            f"ReLU {_fmt(pr)}")
    if late:
        text += (f"; GELU leaves it later at {','.join(late)} (likely cause: with default init and no BN the "
                 "signal shrinks with depth, faster through GELU, slope 1/2 at 0, than through ReLU), and in a "
                 f"run this short ({E} epochs) that wait decides the comparison")
    return text


def _fmt(xs) -> str:
    return "[" + ", ".join(f"{x:.3g}" for x in xs) + "]"


EXPERIMENT = Activations()
