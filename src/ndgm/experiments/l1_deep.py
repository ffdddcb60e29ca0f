"""L1 penalty on a deep network: a larger lam, fewer prunable weights (paper Fig. 3, Table 2).

Objective ``CE + lam * sum_j |theta_j|`` over all parameters, constant lr 0.003, SGD /
RMSProp / Adam with library defaults (NDGM: the penalty's gradient is ``lam * sgn(theta)``
with ``sgn(0) = 0``), ``lam`` in {2, 0.002}. After training: the percent of parameters with
``|theta| < 1e-5`` (Table 2's metric), the percent exactly 0.0, validation accuracy, and
``||theta||_1`` per epoch (Fig. 3). The same runs with ``ProxSGD`` and ``ProxAdam``
(`ndgm.sparse.optim`, soft thresholding in the step) show the cure: exact zeros.

**Two protocols, separate rows.** The paper's code builds each optimizer once and reuses it:
``lam = 2`` first, then the weights are reset and ``lam = 0.002`` runs with the optimizer
state of the first run (*paper* protocol). A sound harness gives every run fresh state
(*fresh* protocol). SGD and ProxSGD keep no state, so for them the two protocols are the
same runs (their paper-protocol rows say so). Adam's step ``lr * m / sqrt(v)`` does not
depend on the gradient's scale, so with fresh state and the L1 term dominating at both lams
the lam = 0.002 run moves like the lam = 2 run; with the state carried over, ``v`` remembers
``(2 * sgn)^2 = 4`` and the steps of the lam = 0.002 run start about 1000x smaller, shrinking
as ``v`` decays (time constant ``1 / (1 - beta2) = 1000`` steps). The mechanism needs a run of
the paper's length (25 epochs of 98 batches, 2,450 steps) to show.

**Why a second pair of lams.** At the paper's lams the penalty (``lam * ||theta||_1`` of 138M
parameters) dwarfs the cross-entropy and the networks learn nothing (the paper reports no
accuracy): Table 2 is a claim about weight dynamics, not about a usable pruned network. The
same comparison runs at ``--learning-lams`` (a 1000x ratio as well), where the networks learn
(a premise row checks their validation accuracy), so the ledger shows whether the effect
survives in a network that works. Every row states the validation accuracy of its runs.

**Rules.** Per seed (the same seed gives both lams the same initial weights and batches),
``r = ln((n_small(lam_lo) + 1/2) / (n_small(lam_hi) + 1/2))`` (counts; the 1/2 keeps an empty
count finite); Student-t 95% interval over seeds. SGD and Adam: "the larger lam leaves fewer
small weights" when the interval lies above ``ln 2`` (a factor 2; the paper's ratios are 30x to
500x); RMSProp: the reverse (paper: 2.6x to 130x more at lam = 2). Fig. 3: the larger lam ends
with the larger ``||theta||_1`` (SGD, Adam): ``ln(norm(lam_hi) / norm(lam_lo))`` above 0. The
cure (fresh protocol): a proximal optimizer has at least 10x the exact zeros of its NDGM
counterpart at the larger lam, and at least 2x fewer *non-zero* weights at the larger lam than
at the smaller one (counted on non-zeros, so 100.00% against 99.99% zeros reads as the 0
against 15 weights it is).

**Version 1.** The first version of the paper fine-tuned VGG16 with SGD (lr 0.01, batch 512
shuffled, 150 epochs in its code) and reported norms 69178.44 against 2113.83 and 99.7%
against 0.01% small weights; its lam values were lost in the text (its code shows 0.1;
``--v1-lams`` defaults to 0.1 and 1e-4, the 1000x ratio of version 2). These rows run only
with ``--weights`` and ``--data-dir``.

Paper size: ``--weights VGG16_STATE_DICT.pt --data-dir cifar-10-batches-py`` (torchvision-layout
VGG16, 1000-way head kept as in the paper unless ``--replace-head true``; batch 512 without
shuffling, no augmentation, Normalize(0.5, 0.5)). Without ``--weights`` the default network is
the small VGG11 of spec section 2 from scratch; the quick run uses a small MLP on the digits'
8 x 8 pixels (``--arch mlp``: 192-128-128-128-10, 59k parameters) and
every deviation is listed in the summary (``deviations``).
"""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path

import numpy as np
import torch

from ..analysis.sparsity import exact_zero_fraction, small_fraction
from ..analysis.stats import mean_interval
from ..claims import Claim, bound, holds, not_run, statistical
from ..device import resolve_device, resolve_dtype
from ..errors import NdgmError
from ..nets import count_parameters
from ..nets.mlp import ImageMLP
from ..nets.vgg import VGG_CONFIGS, SmallVGG, load_vgg16_weights, replace_head
from ..training import NDGM, PROX, ModelStack, checkpoint_folder, make_optimizer, seeded
from .base import Context, Experiment, Param
from .deep_common import common_deep_params, load_data, resolve_workers, run_jobs

SOURCE = "paper Table 2 / Fig. 3"
# Paper Table 2: percent of parameters below 1e-5, (lam=0.002, alt), (lam=2, alt).
PAPER_TABLE2 = {"sgd": ((90.13, 91.34), (0.18, 0.18)), "rmsprop": ((0.02, 1.00), (2.61, 2.67)),
                "adam": ((90.76, 90.68), (2.89, 2.88))}
# Version 1 (arXiv 2401.08426v1, section 3): L1 norms and percent below 1e-5 at the larger and the smaller lam.
PAPER_V1 = {"norm": (69178.44, 2113.83), "small_pct": (0.01, 99.7), "norm_ratio": 30.0}
# "Fewer" / "more" small weights: at least a factor 2 (the paper's ratios are 30x-500x, RMSProp 2.6x-130x).
FACTOR = 2.0
# The cure: a proximal optimizer's exact zeros against its NDGM counterpart's, at least this factor.
ZERO_FACTOR = 10.0
# Hidden widths of the quick network (--arch mlp).
MLP_HIDDEN = (128, 128, 128)
# Optimizers whose state changes a later run when carried over (SGD without momentum and ProxSGD keep none).
STATEFUL = ("rmsprop", "adam", "prox-adam")
# The runs of one (lam pair, optimizer): lam_hi (fresh, also the paper protocol's first run), lam_lo
# fresh, lam_lo after lam_hi with the optimizer state carried over (the paper's order).
ARMS = ("hi", "lo", "lo_paper")
PAIRS = ("paper", "learning")


def _key(pair: str, optimizer: str, arm: str) -> str:
    return f"{pair}/{optimizer}/{arm}"


def log_ratio(a, b) -> np.ndarray:
    """``ln((a + 1/2) / (b + 1/2))`` elementwise, for counts (the 1/2 keeps an empty count finite)."""
    return np.log((np.asarray(a, np.float64) + 0.5) / (np.asarray(b, np.float64) + 0.5))


def _mlp_data(config: dict, data):
    return data.subsample(4) if config["arch"] == "mlp" else data


def _build(config: dict, data, device, dtype):
    """``build(seed) -> model`` for the configured network (the VGG16 file is read once)."""
    if config["weights"]:
        base = load_vgg16_weights(config["weights"], device=device, dtype=dtype)

        def build(seed):
            model = copy.deepcopy(base)  # training changes the weights in place
            if config["replace_head"]:
                replace_head(model, data.num_classes, seed=seed)
            return model
    elif config["arch"] == "mlp":
        def build(seed):
            return seeded(seed, lambda: ImageMLP(data.image_shape, MLP_HIDDEN, data.num_classes, pool=1)).to(device, dtype)
    else:
        def build(seed):
            return seeded(seed, lambda: SmallVGG(config["arch"], "relu", False, data.num_classes)).to(device, dtype)
    return build


def _record(models, hists, threshold: float) -> dict:
    """Per-seed numbers of one run: small and zero counts, final norm and accuracy, curves."""
    n = count_parameters(models[0])
    out = {"small": [int(round(small_fraction(m, threshold) * n)) for m in models],
           "zero": [int(round(exact_zero_fraction(m) * n)) for m in models],
           "n_params": n}
    for k in ("l1", "train_loss", "train_ce", "val_loss", "val_acc"):
        out[k] = np.array([getattr(h, k) for h in hists], dtype=np.float64)
    return out


def train_pair(job: dict) -> dict:
    """One optimizer at one pair of lams, all seeds: the lam_hi run, the fresh lam_lo run and, for
    a stateful optimizer under the paper protocol, the lam_lo run with lam_hi's state carried over.
    Module level, so a worker process can run it."""
    from .. import training

    config = job["config"]
    device, dtype = resolve_device(job["device"]), resolve_dtype(config["dtype"])
    data = _mlp_data(config, load_data(config, normalisation="half")).to(device)
    build = _build(config, data, device, dtype)
    name, (lam_hi, lam_lo), seeds = job["optimizer"], job["lams"], job["seeds"]
    kw = dict(epochs=job["epochs"], batch_size=job["batch_size"], shuffle=config["shuffle"],
              augment=config["augment"], resume=config["resume"], progress=job["progress"], dtype=dtype)
    lr, thr, folder = job["lr"], config["threshold"], job["folder"]
    tag = f"{job['pair']}-{name}"
    out = {"init_l1": [], "arms": {}}
    stack = config["stack_seeds"] and not config["weights"]  # VGG16 has Dropout: one model at a time

    def set_l1(opt, lam):
        for g in opt.param_groups:
            if "l1" in g:
                g["l1"] = lam

    if stack:
        models = [build(s) for s in seeds]
        out["init_l1"] = [float(training.l1_norm(m).detach()) for m in models]
        unit = ModelStack(models)
        initial = unit.state_dict()
        opt = make_optimizer(name, unit.parameters(), lr, l1=lam_hi)
        h = training.train_stack(unit, data, opt, seeds=seeds, l1=lam_hi, checkpoint=folder / f"{tag}-hi.pt",
                                 desc=f"{tag} lam={lam_hi:g}", **kw)
        out["arms"]["hi"] = _record(unit.write_back(), h, thr)
        if job["carry"]:  # the paper's order: weights reset, the optimizer (and its state) kept
            unit.load_state_dict(initial)
            set_l1(opt, lam_lo)
            h = training.train_stack(unit, data, opt, seeds=seeds, l1=lam_lo, checkpoint=folder / f"{tag}-lo-paper.pt",
                                     desc=f"{tag} lam={lam_lo:g} (state carried)", **kw)
            out["arms"]["lo_paper"] = _record(unit.write_back(), h, thr)
        unit = ModelStack([build(s) for s in seeds])
        opt = make_optimizer(name, unit.parameters(), lr, l1=lam_lo)
        h = training.train_stack(unit, data, opt, seeds=seeds, l1=lam_lo, checkpoint=folder / f"{tag}-lo.pt",
                                 desc=f"{tag} lam={lam_lo:g}", **kw)
        out["arms"]["lo"] = _record(unit.write_back(), h, thr)
        return out

    per_seed: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for s in seeds:  # one model at a time, each run's numbers taken at once (a VGG16 is 550 MB)
        model = build(s)
        out["init_l1"].append(float(training.l1_norm(model).detach()))
        initial = copy.deepcopy(model.state_dict())
        opt = make_optimizer(name, model.parameters(), lr, l1=lam_hi)
        h = training.train(model, data, opt, seed=s, l1=lam_hi, checkpoint=folder / f"{tag}-hi-seed{s}.pt",
                           desc=f"{tag} lam={lam_hi:g} seed {s}", **kw)
        per_seed["hi"].append(_record([model], [h], thr))
        if job["carry"]:
            model.load_state_dict(initial)
            set_l1(opt, lam_lo)
            h = training.train(model, data, opt, seed=s, l1=lam_lo, checkpoint=folder / f"{tag}-lo-paper-seed{s}.pt",
                               desc=f"{tag} lam={lam_lo:g} (state carried) seed {s}", **kw)
            per_seed["lo_paper"].append(_record([model], [h], thr))
        del model, opt, initial
        model = build(s)
        opt = make_optimizer(name, model.parameters(), lr, l1=lam_lo)
        h = training.train(model, data, opt, seed=s, l1=lam_lo, checkpoint=folder / f"{tag}-lo-seed{s}.pt",
                           desc=f"{tag} lam={lam_lo:g} seed {s}", **kw)
        per_seed["lo"].append(_record([model], [h], thr))
        del model, opt
    for arm, recs in per_seed.items():
        if recs:
            out["arms"][arm] = {"n_params": recs[0]["n_params"],
                                **{k: [v for r in recs for v in r[k]] for k in ("small", "zero")},
                                **{k: np.concatenate([r[k] for r in recs]) for k in
                                   ("l1", "train_loss", "train_ce", "val_loss", "val_acc")}}
    return out


class L1Deep(Experiment):
    name = "l1-deep"
    title = "L1 on a deep network: larger lam, fewer small weights with NDGM; exact zeros with prox"
    source = "paper Fig. 3 / Table 2 / appendix C"
    full_requires = ("data_dir", "weights", "gpu")
    params = (
        Param("arch", "vgg11", "str", "network without --weights: a small VGG of spec section 2 from scratch, or "
              "mlp (192-128-128-128-10 on the 8 x 8 digit pixels)", choices=(*VGG_CONFIGS, "mlp"), quick="mlp"),
        Param("weights", "", "str", "torchvision-layout VGG16 state dict (paper: ImageNet-pretrained); "
              "empty = --arch from scratch"),
        Param("replace_head", False, "bool", "with --weights: replace the 1000-way head by a 10-way one "
              "(paper: kept)"),
        Param("optimizers", NDGM, "strs", "NDGM optimizers (paper: sgd,rmsprop,adam)", choices=NDGM),
        Param("prox_optimizers", PROX, "strs", "proximal optimizers run at the same lams ('none' to skip)",
              choices=PROX, minimum=0),
        Param("lams", (2.0, 0.002), "floats", "the paper's pair of L1 weights, larger first (paper: 2,0.002)",
              minimum=2, distinct=True),
        Param("learning_lams", (0.001, 1e-6), "floats", "a second pair, larger first, where the networks learn "
              "('none' to skip)", minimum=0, distinct=True),
        Param("protocol", "both", "str", "optimizer state for the smaller lam: fresh, paper (carried over from "
              "the larger lam's run, as the paper's code did) or both", choices=("fresh", "paper", "both")),
        Param("lr", 0.003, "pos", "constant learning rate (paper: 0.003)"),
        Param("epochs", 25, "int", "epochs per run (paper: 200 in the text, 25 in the code)", quick=54),
        Param("batch_size", 512, "int", "minibatch size, 0 = full batch (paper: 512)", minimum=0, quick=32),
        Param("shuffle", False, "bool", "shuffle the training set every epoch (paper: no)"),
        Param("augment", False, "bool", "RandomCrop + flip augmentation (paper: no)"),
        Param("n_seeds", 3, "int", "paired seeds seed, seed+1, ... (paper: 2, 'alt' = the second)", minimum=2),
        Param("threshold", 1e-5, "pos", "a parameter counts as small when |theta| < threshold (paper: 1e-5)"),
        Param("learn_accuracy", 0.5, "pos", "the learning-lams premise: every NDGM run there reaches at least "
              "this validation accuracy"),
        Param("stack_seeds", True, "bool", "train the seeds of a run as one stack (vmap over seeds); not with "
              "--weights (VGG16 has Dropout)"),
        Param("v1_lams", (0.1, 1e-4), "floats", "version 1 (with --weights and --data-dir): the pair of lams, "
              "larger first (its code: 0.1; the smaller is reconstructed)", minimum=2, distinct=True),
        Param("v1_epochs", 150, "int", "version 1: epochs (its code: 150; 0 = skip)", minimum=0),
        Param("v1_lr", 0.01, "pos", "version 1: SGD learning rate (its code: 0.01)"),
        *common_deep_params(train_size_quick=0, val_size_quick=0),
    )
    overrides = {"dtype": "float32"}
    threads = None  # run_jobs sets them per worker
    figures = ("l1_deep.png", "l1_deep_small.png", "table2.md")

    def validate(self, config):
        for name in ("lams", "learning_lams", "v1_lams"):
            lams = config[name]
            if lams and (len(lams) != 2 or not lams[0] > lams[1]):
                raise NdgmError(f"--{name.replace('_', '-')} must be two L1 weights, the larger first, got "
                                f"{','.join(map(repr, lams))}")
        if config["weights"] and not Path(config["weights"]).is_file():
            raise NdgmError(f"--weights {config['weights']!r}: no such file (expected a torchvision VGG16 "
                            "state dict saved with torch.save)")
        if config["learn_accuracy"] >= 1:
            raise NdgmError(f"--learn-accuracy must be < 1, got {config['learn_accuracy']:g}")

    @staticmethod
    def seeds(config: dict) -> list[int]:
        return [config["seed"] + i for i in range(config["n_seeds"])]

    def pairs(self, config: dict) -> dict[str, list[float]]:
        return {"paper": config["lams"], **({"learning": config["learning_lams"]} if config["learning_lams"] else {})}

    def v1_enabled(self, config: dict) -> bool:
        return bool(config["weights"] and config["data_dir"] and config["v1_epochs"] > 0)

    def deviations(self, config: dict, data, steps: int) -> list[str]:
        """What differs from the paper's protocol (appendix C), one line each."""
        params = {p.name: p for p in self.params}
        out = []
        if not config["weights"]:
            net = ("an MLP 192-128-128-128-10 on the 8 x 8 digit pixels" if config["arch"] == "mlp" else
                   f"the small {config['arch'].upper()} of spec section 2")
            out.append(f"network: {net}, from scratch, instead of the ImageNet-pretrained VGG16 (138M parameters)")
        if data.name != "cifar10":
            out.append(f"data: {data.n_train} {data.name} images instead of CIFAR-10's 50,000")
        for name in ("epochs", "batch_size", "lr", "shuffle", "augment"):
            p = params[name]
            if config[name] != p.value():
                out.append(f"{name}: {p.show(config[name])} (paper: {p.show(p.value())})")
        out.append(f"{steps} steps per run (paper: 25 epochs x 98 batches = 2,450)")
        out.append(f"seeds: {config['n_seeds']} paired seeds from {config['seed']} (paper: 2)")
        if config["learning_lams"]:
            out.append(f"added: the same comparison at lam {config['learning_lams'][0]:g} vs "
                       f"{config['learning_lams'][1]:g}, where the networks learn")
        return out

    def compute(self, config: dict, ctx: Context):
        seeds = self.seeds(config)
        data = _mlp_data(config, load_data(config, normalisation="half"))
        opts = config["optimizers"] + config["prox_optimizers"]
        pairs = self.pairs(config)
        carry = config["protocol"] in ("paper", "both")
        fresh = config["protocol"] in ("fresh", "both")
        folder = checkpoint_folder(self.name, config)
        base = {"config": config, "device": str(ctx.device), "seeds": seeds, "folder": folder, "progress": False,
                "epochs": config["epochs"], "batch_size": config["batch_size"], "lr": config["lr"]}
        jobs = [base | {"pair": pair, "lams": lams, "optimizer": o, "carry": carry and o in STATEFUL and o in NDGM}
                for pair, lams in pairs.items() for o in opts]
        jobs.sort(key=lambda j: -int(j["carry"]))  # three runs before two
        if self.v1_enabled(config):
            # version 1's code: SGD lr 0.01, batch 512 shuffled, one run per lam
            jobs.insert(0, base | {"pair": "v1", "lams": config["v1_lams"], "optimizer": "sgd", "carry": False,
                                   "epochs": config["v1_epochs"], "lr": config["v1_lr"], "batch_size": 512,
                                   "seeds": seeds[:1], "config": config | {"shuffle": True}})
        workers, threads = resolve_workers(config["workers"], config["threads"], len(jobs), ctx.device)
        if workers == 1:
            for job in jobs:
                job["progress"] = ctx.progress
        results = run_jobs(train_pair, jobs, workers, threads, progress=ctx.progress and workers > 1,
                           desc="l1-deep runs")
        shutil.rmtree(folder, ignore_errors=True)

        E = config["epochs"]
        pair_names = list(pairs)
        shape = (len(pair_names), len(opts), len(ARMS), len(seeds))
        arrays = {k: np.full(shape + (E,), np.nan) for k in ("l1", "train_loss", "train_ce", "val_loss", "val_acc")}
        arrays.update({k: np.full(shape, np.nan) for k in ("small_pct", "zero_pct", "final_val_acc")})
        summary: dict = {"optimizers": opts, "pairs": pairs, "pair_names": pair_names, "arms": list(ARMS),
                         "seeds": seeds, "lr": config["lr"], "data": data.name, "n_train": data.n_train,
                         "protocols": [p for p, on in (("fresh", fresh), ("paper", carry)) if on],
                         "small": {}, "zero": {}, "val_acc": {}, "l1_final": {}, "penalty_epoch1": {},
                         "ce_epoch1": {}, "init_l1": {}}
        for job, res in zip(jobs, results):
            if job["pair"] == "v1":
                summary["v1"] = self._v1_summary(job, res)
                continue
            p, o = pair_names.index(job["pair"]), opts.index(job["optimizer"])
            summary["init_l1"][f"{job['pair']}/{job['optimizer']}"] = res["init_l1"]
            for arm, rec in res["arms"].items():
                a, key = ARMS.index(arm), _key(job["pair"], job["optimizer"], arm)
                summary["n_params"] = rec["n_params"]
                for k in ("l1", "train_loss", "train_ce", "val_loss", "val_acc"):
                    arrays[k][p, o, a] = rec[k]
                arrays["small_pct"][p, o, a] = 100.0 * np.asarray(rec["small"]) / rec["n_params"]
                arrays["zero_pct"][p, o, a] = 100.0 * np.asarray(rec["zero"]) / rec["n_params"]
                arrays["final_val_acc"][p, o, a] = rec["val_acc"][:, -1]
                summary["small"][key], summary["zero"][key] = rec["small"], rec["zero"]
                summary["val_acc"][key] = [float(v) for v in rec["val_acc"][:, -1]]
                summary["l1_final"][key] = [float(v) for v in rec["l1"][:, -1]]
                summary["ce_epoch1"][key] = [float(v) for v in rec["train_ce"][:, 0]]
                summary["penalty_epoch1"][key] = [float(a_ - b_) for a_, b_ in
                                                  zip(rec["train_loss"][:, 0], rec["train_ce"][:, 0])]
        spe = -(-data.n_train // (data.n_train if config["batch_size"] == 0 else min(config["batch_size"], data.n_train)))
        summary["steps_per_epoch"], summary["steps"] = spe, spe * E
        summary["workers"], summary["threads"] = workers, threads
        summary["deviations"] = self.deviations(config, data, spe * E)
        from ..figures.tables import table2_markdown

        summary["table2"] = {f"{pair}/{proto}": table2_markdown(summary, np.asarray(arrays["small_pct"]), pair, proto)
                             for pair in pair_names for proto in summary["protocols"]}
        return arrays, summary

    @staticmethod
    def _v1_summary(job: dict, res: dict) -> dict:
        hi, lo = res["arms"]["hi"], res["arms"]["lo"]
        n = hi["n_params"]
        return {"lams": job["lams"], "epochs": job["epochs"], "lr": job["lr"], "n_params": n,
                "norm": [float(hi["l1"][0, -1]), float(lo["l1"][0, -1])],
                "small_pct": [100.0 * hi["small"][0] / n, 100.0 * lo["small"][0] / n],
                "val_acc": [float(hi["val_acc"][0, -1]), float(lo["val_acc"][0, -1])]}

    # ------------------------------------------------------------------ claims

    def claims(self, s: dict, config: dict) -> list[Claim]:
        out: list[Claim] = []
        for pair in s["pair_names"]:
            out += self._pair_claims(s, config, pair)
        out += self._v1_claims(s, config)
        return out

    def _pair_claims(self, s: dict, config: dict, pair: str) -> list[Claim]:
        lam_hi, lam_lo = s["pairs"][pair]
        opts, thr = s["optimizers"], config["threshold"]
        lams = f"lam {lam_hi:g} vs {lam_lo:g}"
        where = "Table 2's lams" if pair == "paper" else "networks that learn"
        out: list[Claim] = []
        if pair == "learning":
            out.append(self._premise(s, config, pair))
        context = self._penalty_note(s, pair, config)
        for proto in s["protocols"]:
            arm_lo = "lo" if proto == "fresh" else "lo_paper"
            for name, more in (("sgd", False), ("adam", False), ("rmsprop", True)):
                if name not in opts:
                    continue
                lo_arm = arm_lo if name in STATEFUL else "lo"
                hi, lo = s["small"][_key(pair, name, "hi")], s["small"][_key(pair, name, lo_arm)]
                r = log_ratio(hi, lo) if more else log_ratio(lo, hi)
                iv = mean_interval(r)
                t2 = PAPER_TABLE2[name]
                paper = f"{t2[1][0]:g}/{t2[1][1]:g}% at lam 2 vs {t2[0][0]:g}/{t2[0][1]:g}% at 0.002"
                n = s["n_params"]
                same = "" if name in STATEFUL or proto == "fresh" else (
                    f"{name} keeps no optimizer state: the paper's order gives the fresh protocol's runs; ")
                out.append(statistical(
                    f"{name}: the larger lam leaves {'more' if more else 'fewer'} parameters below {thr:g} "
                    f"({lams}, {where}, {proto} protocol)", SOURCE,
                    f"{'more' if more else 'fewer'} by a factor > {FACTOR:g} (paper: {paper})",
                    statistic=("mean over seeds of ln((small(lam_hi) + 1/2) / (small(lam_lo) + 1/2))" if more else
                               "mean over seeds of ln((small(lam_lo) + 1/2) / (small(lam_hi) + 1/2))")
                    + " (counts of |theta| < threshold)",
                    **iv.claim_kwargs(), margin=math.log(FACTOR), test="greater", values=r, protocol=proto,
                    detail=same + f"% small: lam {lam_hi:g} {_pcts(hi, n)}, lam {lam_lo:g} {_pcts(lo, n)}; "
                    + self._acc(s, pair, name, lo_arm) + context))
            for name in ("sgd", "adam"):
                if name not in opts:
                    continue
                lo_arm = arm_lo if name in STATEFUL else "lo"
                hi, lo = s["l1_final"][_key(pair, name, "hi")], s["l1_final"][_key(pair, name, lo_arm)]
                r = np.log(np.asarray(hi) / np.asarray(lo))
                iv = mean_interval(r)
                same = "" if name in STATEFUL or proto == "fresh" else (
                    f"{name} keeps no optimizer state: the paper's order gives the fresh protocol's runs; ")
                out.append(statistical(
                    f"{name}: the larger lam ends with the larger L1 norm ({lams}, {where}, {proto} protocol)",
                    "paper Fig. 3", "norm(lam_hi) > norm(lam_lo)",
                    statistic="mean over seeds of ln(||theta||_1(lam_hi) / ||theta||_1(lam_lo)) after the last epoch",
                    **iv.claim_kwargs(), margin=0.0, test="greater", values=r, protocol=proto,
                    detail=same + f"||theta||_1: lam {lam_hi:g} {_nums(hi)}, lam {lam_lo:g} {_nums(lo)}; "
                    + self._acc(s, pair, name, lo_arm) + context))
        if "fresh" in s["protocols"]:
            out += self._prox_claims(s, config, pair, lams, where, context)
        return out

    def _prox_claims(self, s, config, pair, lams, where, context) -> list[Claim]:
        out = []
        n = s["n_params"]
        lam_hi, lam_lo = s["pairs"][pair]
        for name in [o for o in s["optimizers"] if o in PROX]:
            ndgm = {"prox-sgd": "sgd", "prox-adam": "adam"}.get(name)
            zh, zl = s["zero"][_key(pair, name, "hi")], s["zero"][_key(pair, name, "lo")]
            if ndgm in s["optimizers"]:
                zn = s["zero"][_key(pair, ndgm, "hi")]
                r = log_ratio(zh, zn)
                iv = mean_interval(r)
                out.append(statistical(
                    f"{name}: exact zeros where {ndgm} (NDGM) has almost none (lam {lam_hi:g}, {where})",
                    "spec 3.4 (the cure)", f"exact zeros > {ZERO_FACTOR:g}x those of {ndgm}",
                    statistic=f"mean over seeds of ln((zeros({name}) + 1/2) / (zeros({ndgm}) + 1/2)), same seed",
                    **iv.claim_kwargs(), margin=math.log(ZERO_FACTOR), test="greater", values=r, protocol="fresh",
                    detail=f"% exactly 0: {name} {_pcts(zh, n)}, {ndgm} {_pcts(zn, n)}; "
                    + self._acc(s, pair, name, "lo") + context))
            nz_hi, nz_lo = n - np.asarray(zh), n - np.asarray(zl)
            r = log_ratio(nz_lo, nz_hi)
            iv = mean_interval(r)
            out.append(statistical(
                f"{name}: the larger lam leaves fewer non-zero parameters ({lams}, {where})", "spec 3.4 (the cure)",
                f"non-zeros fewer by a factor > {FACTOR:g} at the larger lam",
                statistic="mean over seeds of ln((nonzero(lam_lo) + 1/2) / (nonzero(lam_hi) + 1/2)), counts",
                **iv.claim_kwargs(), margin=math.log(FACTOR), test="greater", values=r, protocol="fresh",
                detail=f"non-zero parameters of {n}: lam {lam_hi:g} {_nums(nz_hi)}, lam {lam_lo:g} {_nums(nz_lo)} "
                f"(% exactly 0: {_pcts(zh, n)} vs {_pcts(zl, n)}); " + self._acc(s, pair, name, "lo") + context))
        return out

    def _premise(self, s: dict, config: dict, pair: str) -> Claim:
        """The learning pair's premise: every NDGM run there (both lams, every protocol) learns."""
        accs = {k: v for k, v in s["val_acc"].items() if k.startswith(f"{pair}/") and k.split("/")[1] in NDGM}
        worst = min(min(v) for v in accs.values())
        lam_hi, lam_lo = s["pairs"][pair]
        return bound(f"at lam {lam_hi:g} and {lam_lo:g} the NDGM networks learn (the premise of the "
                     "learning-lam rows)", "ndgm (not in the paper)", worst, lower=config["learn_accuracy"],
                     name="lowest validation accuracy of any NDGM run", detail="chance is 0.1; mean accuracy per run: "
                     + ", ".join(f"{k.split('/', 1)[1]} {np.mean(v):.2f}" for k, v in accs.items()))

    @staticmethod
    def _acc(s: dict, pair: str, name: str, lo_arm: str) -> str:
        hi = s["val_acc"][_key(pair, name, "hi")]
        lo = s["val_acc"][_key(pair, name, lo_arm)]
        return f"validation accuracy {np.mean(hi):.2f} (larger lam) and {np.mean(lo):.2f} (smaller), chance 0.10"

    @staticmethod
    def _penalty_note(s: dict, pair: str, config: dict) -> str:
        """At the initial weights: the penalty lam * ||theta_0||_1 against the chance-level cross-entropy."""
        init = [v for k, vs in s["init_l1"].items() if k.startswith(f"{pair}/") for v in vs]
        if not init:
            return ""
        l1 = float(np.mean(init))
        lam_hi, lam_lo = s["pairs"][pair]
        note = (f"; at the initial weights lam * ||theta_0||_1 = {lam_hi * l1:.3g} and {lam_lo * l1:.3g} against a "
                f"cross-entropy of ln 10 = 2.30")
        if lam_lo * l1 > 2.30:
            note += (": the penalty dwarfs the cross-entropy at both lams, so this row is about weight dynamics, "
                     "not about a usable pruned network")
        return note

    def _v1_claims(self, s: dict, config: dict) -> list[Claim]:
        src = "paper v1 (arXiv 2401.08426v1) section 3"
        norm_claim = "v1: the larger lam ends with a norm more than 30x larger (SGD, pretrained VGG16)"
        small_claim = "v1: the smaller lam leaves 99.7% of the weights below 1e-5, the larger 0.01%"
        exp_norm = f"ratio > {PAPER_V1['norm_ratio']:g} (paper: {PAPER_V1['norm'][0]:g} vs {PAPER_V1['norm'][1]:g})"
        exp_small = f"{PAPER_V1['small_pct'][1]:g}% vs {PAPER_V1['small_pct'][0]:g}%"
        if "v1" not in s:
            why = ("not run here: needs the ImageNet-pretrained VGG16 (--weights) and CIFAR-10 (--data-dir); "
                   "150 epochs of VGG16 need a GPU" if config["v1_epochs"] > 0 else "not run: --v1-epochs 0")
            return [not_run(norm_claim, src, why, exp_norm), not_run(small_claim, src, why, exp_small)]
        v = s["v1"]
        lam_hi, lam_lo = v["lams"]
        acc = f"validation accuracy {v['val_acc'][0]:.2f} (lam {lam_hi:g}) and {v['val_acc'][1]:.2f} (lam {lam_lo:g})"
        ratio = v["norm"][0] / v["norm"][1] if v["norm"][1] > 0 else float("inf")
        c1 = bound(norm_claim, src, ratio, lower=PAPER_V1["norm_ratio"], strict=True, expected=exp_norm,
                   name="norm(lam_hi) / norm(lam_lo)",
                   detail=f"norms {v['norm'][0]:.6g} (lam {lam_hi:g}) and {v['norm'][1]:.6g} (lam {lam_lo:g}) after "
                   f"{v['epochs']} epochs of SGD lr {v['lr']:g}; {acc}; lam values reconstructed (--v1-lams)")
        small_hi, small_lo = v["small_pct"]
        c2 = holds(small_claim, src, exp_small, f"{small_lo:.4g}% vs {small_hi:.4g}%",
                   small_lo >= 99.0 and small_hi <= 1.0,
                   "% small at the smaller lam >= 99 and at the larger <= 1 (paper: 99.7 and 0.01)",
                   f"{acc}; lam values reconstructed (--v1-lams)", kind="bound")
        return [c1, c2]


def _pcts(counts, n: int) -> str:
    return "/".join(f"{100.0 * c / n:.3g}" for c in counts)


def _nums(xs) -> str:
    return "/".join(f"{float(x):.4g}" for x in xs)


EXPERIMENT = L1Deep()
