"""Pruning that keeps its promise: NDGM + L1 against proximal training on a small VGG (the cure at scale).

The paper's practical message: ``loss + lam * ||theta||_1`` trained with SGD or Adam (NDGM: the
penalty's gradient is ``lam * sgn(theta)``) leaves no exact zeros -- every weight the penalty pulls
to 0 keeps crossing it -- while proximal methods give them. Here the small VGG of spec section 2
(reduced width for the quick run) is trained on the offline digits, paired over seeds (the same
initial weights and batches for every arm of a seed), by

* ``sgd-l1`` / ``adam-l1``: torch's SGD (momentum) / Adam with the L1 term in the loss (NDGM);
* ``prox-sgd-l1`` / ``prox-adam-l1``: `ProxSGD` / `ProxAdam` (Adam's preconditioned threshold) on the
  same objective ``CE + lam * ||W||_1``;
* ``prox-sgd-group`` / ``prox-adam-group``: the same with the group penalty ``lam * sum_c ||W_c||_2``
  over output channels (conv) and neurons (linear) -- structured zeros, whole channels;
* optionally ``prox-adam-l1-uniform``: ProxAdam's threshold that does not scale with Adam's
  denominator.

The VGG has no BatchNorm by default (a zero channel before a BatchNorm gets a gradient amplified by
``1/sqrt(eps)``, so group zeros would not stay) and He-normal initial weights (torch's default leaves
the eight-conv network near chance for many epochs). The quick run keeps the Adam arms (SGD without
BatchNorm needs more epochs than the quick budget), one lam each, a quarter-width VGG and 384 digits.

Weights of conv and linear layers are penalised, biases are not (`ndgm.sparse.penalised_groups`;
the NDGM arms penalise the same tensors). Each arm runs a small grid of ``lam``; at *matched
accuracy* an arm's ``lam`` is the largest whose mean validation accuracy is within
``--acc-tolerance`` of the unpenalised run of its base optimizer (same seeds). There the run
records: the fraction of penalised weights exactly 0, the output channels whose weights are all 0,
and `ndgm.sparse.compact`'s smaller model -- parameters, bytes on disk, the largest output
difference on the validation images, and the measured inference speed-up (median of repeated
forwards of a batch, dense and compacted timed alternately).

Claims (paired seeds; intervals: bootstrap over per-seed values or differences): NDGM leaves
(almost) no exact zeros; each proximal arm has more exact zeros than its NDGM counterpart; each
proximal arm's accuracy is matched; the group arms remove channels, more than the L1 arms, and
their compacted model is faster; compaction changes no output beyond float rounding.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..analysis.stats import bootstrap_interval
from ..claims import Claim, bound, holds, statistical
from ..errors import NdgmError
from ..nets import count_parameters
from ..nets.vgg import VGG_CONFIGS, SmallVGG
from ..training import epoch_generator, evaluate, seeded
from .base import Context, Experiment, Param
from .deep_common import load_data

# arm -> (base optimizer, penalty, how the penalty is applied)
ARMS = {
    "sgd-l1": ("sgd", "l1", "ndgm"),
    "adam-l1": ("adam", "l1", "ndgm"),
    "prox-sgd-l1": ("sgd", "l1", "preconditioned"),
    "prox-sgd-group": ("sgd", "group", "preconditioned"),
    "prox-adam-l1": ("adam", "l1", "preconditioned"),
    "prox-adam-group": ("adam", "group", "preconditioned"),
    "prox-adam-l1-uniform": ("adam", "l1", "uniform"),
}
DEFAULT_ARMS = ("sgd-l1", "adam-l1", "prox-sgd-l1", "prox-sgd-group", "prox-adam-l1", "prox-adam-group")
COUNTERPART = {"prox-sgd-l1": "sgd-l1", "prox-adam-l1": "adam-l1", "prox-adam-l1-uniform": "adam-l1"}
SOURCE = "paper sec. 3-4 (L1 gives no exact zeros; proximal methods do), spec 3.4"
PER_RUN = ("val_acc", "zero_frac", "zero_frac_all", "small_frac", "zero_channels", "channels_removed",
           "params_after", "bytes_after", "rel_diff", "seconds_dense", "seconds_compact", "speedup")


class Prune(Experiment):
    name = "prune"
    title = "Pruning: NDGM + L1 vs proximal L1 / group L2 on a small VGG, exact zeros, channels removed, speed-up"
    source = SOURCE
    params = (
        Param("arch", "vgg11", "str", "small VGG of spec section 2", choices=tuple(VGG_CONFIGS)),
        Param("width", 1.0, "pos", "channel multiplier of the VGG (1: the paper's widths)", quick=0.25),
        Param("batch_norm", False, "bool", "BatchNorm after every conv (compact folds it; a zero channel before a "
              "BatchNorm gets a gradient amplified by 1/sqrt(eps), so group zeros do not stay)"),
        Param("init", "kaiming", "str", "weights of conv / linear layers: He-normal (fan-in, biases 0; the VGG "
              "without BatchNorm trains in a few epochs) or torch's default", choices=("kaiming", "torch")),
        Param("arms", DEFAULT_ARMS, "strs", "training arms (module docstring)", choices=tuple(ARMS), distinct=True,
              quick=("adam-l1", "prox-adam-l1", "prox-adam-group")),
        Param("l1_lams", (3e-5, 1e-4, 3e-4), "floats", "lam grid of the L1 arms (objective CE + lam ||W||_1)",
              quick=(3e-5,), distinct=True),
        Param("group_lams", (3e-4, 1e-3, 3e-3), "floats", "lam grid of the group arms (CE + lam sum_c ||W_c||_2)",
              quick=(3e-4,), distinct=True),
        Param("lr_sgd", 0.05, "pos", "learning rate of the SGD arms (momentum --momentum)"),
        Param("lr_adam", 3e-3, "pos", "learning rate of the Adam arms"),
        Param("momentum", 0.9, "nonneg", "SGD momentum"),
        Param("epochs", 30, "int", "epochs per run", quick=8),
        Param("batch_size", 64, "int", "minibatch size", quick=32),
        Param("n_seeds", 3, "int", "paired seeds seed, seed+1, ... (intervals need 2, the claims ask 3)",
              minimum=2),
        Param("acc_tolerance", 0.02, "pos", "matched accuracy: mean validation accuracy at most this below the "
              "unpenalised run's (quick: 200 validation images, one binomial SE is ~3%)", quick=0.05),
        Param("zero_margin", 0.01, "pos", "proximal arms: exact-zero fraction above NDGM's by more than this"),
        Param("zero_tolerance", 1e-3, "nonneg", "NDGM arms: exact-zero fraction at most this"),
        Param("channel_margin", 0.05, "pos", "group arms: fraction of channels removed above this"),
        Param("timing_batch", 256, "int", "images per forward when timing inference", quick=64),
        Param("timing_repeats", 15, "int", "timed forwards per model (median)", quick=6),
        Param("data_dir", "", "str", "CIFAR-10 python folder (cifar-10-batches-py); empty = offline digits"),
        Param("train_size", 0, "int", "use the first N training images, 0 = all", minimum=0, quick=384),
        Param("val_size", 0, "int", "use the first N validation images, 0 = all", minimum=0, quick=200),
        Param("threads", 0, "int", "CPU threads for torch, 0 = torch's default", minimum=0, quick=1),
    )
    overrides = {"dtype": "float32"}
    threads = "threads"
    figures = ("prune.png", "prune_table.md")

    def validate(self, config):
        for key in ("l1_lams", "group_lams"):
            if len({f"{lam:g}" for lam in config[key]}) != len(config[key]):
                raise NdgmError(f"--{key.replace('_', '-')} must differ in their first 6 significant digits (the "
                                f"summary's keys), got {','.join(map(repr, config[key]))}")
        if config["width"] > 16:
            raise NdgmError(f"--width must be at most 16 (a VGG 16 times the paper's width), got {config['width']!r}")
        if config["data_dir"]:
            load_data(config, normalisation="half")  # a bad folder fails now, before any training
        if config["momentum"] >= 1:
            raise NdgmError(f"--momentum must be < 1, got {config['momentum']!r}")

    # -------------------------------------------------------------------------------------- compute

    def compute(self, config: dict, ctx: Context):
        from ..sparse.compact import compact, measure_compaction

        dtype, device = ctx.dtype, ctx.device
        data = load_data(config, normalisation="half").to(device)
        seeds = [config["seed"] + s for s in range(config["n_seeds"])]
        arms = config["arms"]
        bases = sorted({ARMS[a][0] for a in arms})
        lams = {a: config["l1_lams"] if ARMS[a][1] == "l1" else config["group_lams"] for a in arms}
        n_lam = max(len(config["l1_lams"]), len(config["group_lams"]))
        E = config["epochs"]

        def build(seed):
            return seeded(seed, lambda: _init(SmallVGG(config["arch"], "relu", config["batch_norm"], data.num_classes,
                                                       width=config["width"]), config["init"])).to(device, dtype)

        x_time, _ = data.batch(slice(0, min(config["timing_batch"], data.n_val)), train=False, dtype=dtype)
        arrays = {k: np.full((len(arms), n_lam, len(seeds)), np.nan) for k in PER_RUN}
        arrays["val_curve"] = np.full((len(arms), n_lam, len(seeds), E), np.nan)
        arrays["dense_val_acc"] = np.full((len(bases), len(seeds)), np.nan)
        dense_params = dense_bytes = 0
        for si, seed in enumerate(seeds):
            for bi, base in enumerate(bases):
                model = build(seed)
                curve = _train(model, self._optimizer(base, "none", 0.0, model, config), data, config, seed, 0.0,
                               dtype)
                arrays["dense_val_acc"][bi, si] = curve[-1]
            dense_params = count_parameters(model)
            from ..sparse.compact import state_dict_bytes

            dense_bytes = state_dict_bytes(model)
            for ai, arm in enumerate(arms):
                base, penalty, how = ARMS[arm]
                for li, lam in enumerate(lams[arm]):
                    model = build(seed)
                    opt = self._optimizer(base, how, lam if how != "ndgm" else 0.0, model, config, penalty)
                    curve = _train(model, opt, data, config, seed, lam if how == "ndgm" else 0.0, dtype)
                    idx = (ai, li, si)
                    arrays["val_curve"][idx] = curve
                    stats = _sparsity(model)
                    small = compact(model)
                    rep = measure_compaction(model, small, x_time, repeats=config["timing_repeats"])
                    with torch.no_grad():
                        scale = float(model(x_time).abs().max())
                    values = dict(val_acc=curve[-1], **stats, channels_removed=rep.removed_fraction,
                                  params_after=rep.params_after, bytes_after=rep.bytes_after,
                                  rel_diff=rep.max_abs_diff / max(scale, 1.0), seconds_dense=rep.seconds_before,
                                  seconds_compact=rep.seconds_after, speedup=rep.speedup)
                    for k, v in values.items():
                        arrays[k][idx] = v
        summary = {"arms": arms, "bases": bases, "seeds": seeds, "lams": lams, "data": data.name,
                   "n_train": data.n_train, "n_val": data.n_val, "params_dense": dense_params,
                   "bytes_dense": dense_bytes,
                   "dense_val_acc": {b: [float(v) for v in arrays["dense_val_acc"][bi]] for bi, b in enumerate(bases)},
                   "runs": {arm: {f"{lam:g}": {k: [float(v) for v in arrays[k][ai, li]] for k in PER_RUN}
                                  for li, lam in enumerate(lams[arm])} for ai, arm in enumerate(arms)}}
        summary["matched"] = matched_lams(summary, config["acc_tolerance"])
        from ..figures.tables import prune_markdown

        summary["table"] = prune_markdown(summary)
        return arrays, summary

    @staticmethod
    def _optimizer(base: str, how: str, lam: float, model: nn.Module, config: dict, penalty: str = "l1"):
        """The arm's optimizer: torch's for NDGM (the penalty is in the loss) and the dense baseline, the
        proximal one with ``penalty`` on conv / linear weights otherwise."""
        from ..problems import GroupL2Penalty, L1NormPenalty
        from ..sparse import ProxAdam, ProxSGD, penalised_groups

        if how in ("ndgm", "none"):
            if base == "sgd":
                return torch.optim.SGD(model.parameters(), lr=config["lr_sgd"], momentum=config["momentum"])
            return torch.optim.Adam(model.parameters(), lr=config["lr_adam"])
        pen = L1NormPenalty(lam) if penalty == "l1" else GroupL2Penalty(lam)
        groups = penalised_groups(model, pen)
        if base == "sgd":
            return ProxSGD(groups, lr=config["lr_sgd"], momentum=config["momentum"])
        return ProxAdam(groups, lr=config["lr_adam"], threshold=how)

    # -------------------------------------------------------------------------------------- claims

    def claims(self, s: dict, config: dict) -> list[Claim]:
        out: list[Claim] = []
        arms, matched = s["arms"], s["matched"]

        def at(arm: str, key: str) -> np.ndarray:
            return np.asarray(s["runs"][arm][matched[arm]["lam"]][key], dtype=np.float64)

        note = lambda arm: (f"{arm} at lam = {matched[arm]['lam']} (the largest of its grid within "  # noqa: E731
                            f"{config['acc_tolerance']:g} of the unpenalised accuracy"
                            + ("" if matched[arm]["matched"] else "; none was: the smallest lam") + ")")
        for arm in arms:
            if ARMS[arm][2] != "ndgm":
                continue
            z = at(arm, "zero_frac")
            out.append(bound(f"{arm}: L1 in the loss (NDGM) leaves (almost) no exact zeros", SOURCE, float(z.max()),
                             upper=config["zero_tolerance"], name="largest exact-zero fraction over seeds",
                             detail=note(arm) + f"; per seed {_fmt(z)}"))
        for arm, ndgm in COUNTERPART.items():
            if arm in arms and ndgm in arms:
                d = at(arm, "zero_frac") - at(ndgm, "zero_frac")
                iv = bootstrap_interval(d)
                out.append(statistical(
                    f"{arm}: exact zeros that {ndgm} does not give, at matched accuracy", SOURCE,
                    f"> {config['zero_margin']:g} more of the penalised weights exactly 0",
                    statistic=f"paired difference of exact-zero fractions ({arm} - {ndgm}), mean over seeds",
                    **iv.claim_kwargs(), margin=config["zero_margin"], test="greater", values=d.tolist(),
                    detail=f"{note(arm)}; {note(ndgm)}"))
        for arm in arms:
            base = ARMS[arm][0]
            if ARMS[arm][2] == "ndgm" or base not in s["dense_val_acc"]:
                continue
            d = at(arm, "val_acc") - np.asarray(s["dense_val_acc"][base])
            iv = bootstrap_interval(d)
            out.append(statistical(
                f"{arm}: validation accuracy matched to unpenalised {base}", "matched-accuracy protocol",
                f"accuracy drop < {config['acc_tolerance']:g}", statistic=f"paired difference of validation "
                f"accuracy ({arm} - {base} without penalty), mean over seeds", **iv.claim_kwargs(),
                margin=-config["acc_tolerance"], test="greater", values=d.tolist(), detail=note(arm)))
        for arm in arms:
            if ARMS[arm][1] != "group":
                continue
            c = at(arm, "channels_removed")
            iv = bootstrap_interval(c)
            out.append(statistical(
                f"{arm}: whole channels and neurons are exactly 0 and compact removes them", SOURCE,
                f"> {config['channel_margin']:g} of the reachable channels removed",
                statistic="fraction of output channels compact removes, mean over seeds", **iv.claim_kwargs(),
                margin=config["channel_margin"], test="greater", values=c.tolist(),
                detail=f"{note(arm)}; parameters {_fmt(at(arm, 'params_after'), '.0f')} of {s['params_dense']}"))
            l1_arm = arm.replace("group", "l1")
            if l1_arm in arms:
                d = c - at(l1_arm, "channels_removed")
                iv = bootstrap_interval(d)
                out.append(statistical(
                    f"{arm} removes more channels than {l1_arm} at matched accuracy", "structured vs unstructured",
                    "> 0", statistic=f"paired difference of channel fractions removed ({arm} - {l1_arm})",
                    **iv.claim_kwargs(), margin=0.0, test="greater", values=d.tolist(),
                    detail=f"{note(arm)}; {note(l1_arm)}"))
            sp = at(arm, "speedup")
            iv = bootstrap_interval(sp)
            out.append(statistical(
                f"{arm}: the compacted model runs faster than the dense one", "compaction",
                "speed-up > 1", statistic="inference speed-up (median time dense / compacted), mean over seeds",
                **iv.claim_kwargs(), margin=1.0, test="greater", values=sp.tolist(),
                detail=f"{note(arm)}; channels removed {_fmt(c)}; batch of {config['timing_batch']} images, "
                       f"{config['threads'] or 'default'} thread(s); timings are of this machine",
                undecided="the interval straddles 1: timing noise on a loaded machine, or too few channels removed "
                          "to matter; more seeds or --timing-repeats would decide"))
        diffs = [v for arm in arms for lam in s["runs"][arm] for v in s["runs"][arm][lam]["rel_diff"]]
        out.append(bound("compact: the compacted model's outputs equal the trained model's", "ndgm.sparse.compact",
                         float(np.nanmax(diffs)), upper=1e-5, name="largest output difference / max(1, |logits|)",
                         detail=f"over every run ({len(diffs)}), on {min(config['timing_batch'], s['n_val'])} "
                                "validation images, float rounding only (folded constants change the order of sums)"))
        ok = all(matched[a]["matched"] for a in arms)
        out.append(holds("every arm has a lam at matched accuracy in its grid", "matched-accuracy protocol",
                         "yes", "yes" if ok else "no: " + ", ".join(a for a in arms if not matched[a]["matched"]),
                         ok, f"mean validation accuracy >= unpenalised mean - {config['acc_tolerance']:g} for "
                         "some lam of each arm's grid"))
        return out


def matched_lams(s: dict, tolerance: float) -> dict:
    """Per arm: the largest lam of its grid whose mean validation accuracy is at least the unpenalised
    run's mean minus ``tolerance`` (``matched``), else the smallest lam (``matched: False``)."""
    out = {}
    for arm in s["arms"]:
        base = ARMS[arm][0]
        target = float(np.mean(s["dense_val_acc"][base])) - tolerance
        keys = sorted(s["runs"][arm], key=float)
        ok = [k for k in keys if float(np.mean(s["runs"][arm][k]["val_acc"])) >= target]
        out[arm] = {"lam": ok[-1] if ok else keys[0], "matched": bool(ok), "target_acc": target}
    return out


def _init(model: nn.Module, how: str) -> nn.Module:
    """He-normal weights (``N(0, 2 / fan_in)``) and zero biases for conv / linear layers (``'kaiming'``), or
    torch's default (``'torch'``: uniform with a third of that variance, under which the eight-conv VGG
    without BatchNorm stays near chance for many epochs)."""
    if how == "kaiming":
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return model


def _train(model: nn.Module, opt, data, config: dict, seed: int, l1: float, dtype) -> list[float]:
    """Minibatch training: ``CE + l1 * sum |W|`` over conv / linear weights when ``l1 > 0`` (NDGM), else
    CE alone (a proximal optimizer applies its penalty). Batch order from `epoch_generator` (the same for
    every arm of a seed); no augmentation. Returns the validation accuracy after each epoch."""
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    n, bs = data.n_train, min(config["batch_size"], data.n_train)
    device = next(model.parameters()).device
    curve = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in range(config["epochs"]):
            model.train()
            order = torch.randperm(n, generator=epoch_generator(seed, epoch)).to(device)
            for b in range(-(-n // bs)):
                x, y = data.batch(order[b * bs:(b + 1) * bs], dtype=dtype)
                loss = nn.functional.cross_entropy(model(x), y)
                if l1:
                    loss = loss + l1 * sum(w.abs().sum() for w in weights)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            curve.append(evaluate(model, data, dtype=dtype)[1])
    return curve


@torch.no_grad()
def _sparsity(model: nn.Module) -> dict:
    """Exact zeros of the penalised weights and of all parameters, weights below 1e-5, dead output channels."""
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    n = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    every = list(model.parameters())
    rows = [(w.reshape(w.shape[0], -1) == 0).all(1) for w in weights[:-1]]  # the classifier's outputs stay
    return {"zero_frac": zeros / n, "small_frac": sum(int((w.abs() < 1e-5).sum()) for w in weights) / n,
            "zero_frac_all": sum(int((p == 0).sum()) for p in every) / sum(p.numel() for p in every),
            "zero_channels": float(sum(int(r.sum()) for r in rows))}


def _fmt(xs, spec: str = ".3g") -> str:
    return "/".join(format(float(x), spec) for x in np.ravel(xs))


EXPERIMENT = Prune()
