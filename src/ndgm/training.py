"""Training loop for the deep-network experiments: deterministic, checkpointed, resumable.

`train` runs ``epochs`` epochs of minibatch training of a classifier on an `ImageData`,
minimising

    L(theta) = mean_batch CE(model(x), y) + lam * sum_j |theta_j|

where the L1 term is differentiated by autograd (NDGM, ``penalty='autograd'``; sgn(0) = 0)
or only reported (``penalty='report'``: a proximal optimizer handles it in its step). By
default the optimizer decides: one whose parameter groups carry an ``l1`` option applies the
penalty itself.

Determinism: the global torch RNG (model code such as Dropout draws from it) is reset to
``seed`` at the start and saved in every checkpoint; the batch order and the augmentation
of epoch ``e`` come from a CPU generator seeded with ``(seed, e)``, so an epoch's data do
not depend on what ran before. On the CPU the same seed gives the same losses to the last
bit, and a run resumed from the checkpoint of epoch ``e`` continues exactly as the
uninterrupted run. The caller's global RNG state is restored on return.

Checkpoints (``checkpoint=PATH``) are written after every epoch to a temporary file in the
same folder and renamed into place, so an interruption leaves the previous one intact.

Seeds as a batch dimension: `ModelStack` holds K models of one architecture as one set of
stacked parameters (leading axis = model, `torch.func.stack_module_state`) and evaluates
them with ``vmap`` over `torch.func.functional_call`; `train_stack` trains the K models of a
stack at once, model ``k`` seeing exactly the batches and augmentation ``train(seed=seeds[k])``
would draw. The objective summed over the models,

    sum_k [ mean_batch CE_k + lam_k * ||theta_k||_1 ],

has the gradient of model ``k``'s own objective in model ``k``'s slice, and SGD, RMSProp,
Adam, ProxSGD and ProxAdam act elementwise, so one optimizer over the stacked tensors is K
independent optimizers. A stacked model's curves equal its unstacked run's up to rounding
(the convolutions take a grouped kernel), not bit for bit; a stack is itself deterministic.
BatchNorm works in a stack (its running statistics are stacked buffers); modules that draw
from the global RNG (Dropout) are refused, since vmap would give every model the same draws.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import copy
from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from . import registry
from .data.images import ImageData
from .errors import NdgmError
from .nets import count_parameters
from .store import DEFAULT_ROOT, atomic_write, config_hash

__all__ = ["History", "train", "evaluate", "l1_norm", "make_optimizer", "NDGM", "PROX", "OPTIMIZERS",
           "epoch_generator", "seeded", "checkpoint_folder", "ModelStack", "train_stack", "evaluate_stack"]

# Optimizer names of `make_optimizer` (from `ndgm.registry`): NDGM ones (the L1 term's gradient is
# lam * sgn(theta)) and their proximal counterparts (soft thresholding in the step).
NDGM = registry.names("ndgm", has="optimizer")
PROX = tuple(name for name in registry.names("prox", has="optimizer") if registry.get(name).counterpart in NDGM)
OPTIMIZERS = NDGM + PROX


@dataclass
class History:
    """Per-epoch records of one training run (one entry per finished epoch).

    ``train_loss``: mean over the epoch's batches of the objective (CE + lam * ||theta||_1);
    ``train_ce``: the same for the cross-entropy alone; ``val_loss`` / ``val_acc``: mean
    cross-entropy and accuracy over the validation split in eval mode; ``l1``:
    ``||theta||_1`` after the epoch.
    """

    train_loss: list[float] = field(default_factory=list)
    train_ce: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    l1: list[float] = field(default_factory=list)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """CPU generator for the batch order and augmentation of one epoch."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


def l1_norm(model: nn.Module) -> torch.Tensor:
    """``sum_j |theta_j|`` over every parameter (a 0-d tensor carrying gradients)."""
    return sum(p.abs().sum() for p in model.parameters())


def make_optimizer(name: str, params, lr: float, l1: float = 0.0) -> torch.optim.Optimizer:
    """An optimizer of `OPTIMIZERS` by its registry name: torch.optim SGD / RMSprop / Adam with library
    defaults, or `ndgm.sparse.optim`'s ``ProxSGD`` / ``ProxAdam`` with L1 weight ``l1`` (these apply
    the penalty in their step)."""
    if name not in OPTIMIZERS:
        raise NdgmError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return registry.get(name).build_optimizer(params, lr=lr, l1=l1)


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageData, batch_size: int = 1000,
             dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the validation split, in eval mode (per-sample mean)."""
    was_training = model.training
    model.eval()
    n = data.n_val
    # Accumulate on the device, read once: float64 sums of the per-batch sums give the same
    # bits as adding them up as Python floats.
    total = torch.zeros((), dtype=torch.float64, device=data.val_y.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.val_y.device)
    for start in range(0, n, batch_size):
        x, y = data.batch(slice(start, start + batch_size), train=False, dtype=dtype)
        out = model(x)
        total += nn.functional.cross_entropy(out, y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
    model.train(was_training)
    return float(total) / max(n, 1), int(correct) / max(n, 1)


def _atomic_save(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _load_checkpoint(path: Path, fingerprint: dict) -> dict:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise NdgmError(f"checkpoint {str(path)!r} cannot be read ({type(e).__name__}); "
                        "delete it or run without --resume") from None
    if ck.get("fingerprint") != fingerprint:
        diff = sorted(k for k in set(fingerprint) | set(ck.get("fingerprint", {}))
                      if fingerprint.get(k) != ck.get("fingerprint", {}).get(k))
        raise NdgmError(f"checkpoint {str(path)!r} belongs to a different run (differs in {', '.join(diff)}); "
                        "delete it or run without --resume")
    return ck


def train(model: nn.Module, data: ImageData, optimizer: torch.optim.Optimizer, *, epochs: int, batch_size: int,
          seed: int, l1: float = 0.0, penalty: str | None = None, shuffle: bool = True, augment: bool = True,
          checkpoint: str | Path | None = None, resume: bool = False, progress: bool = False, desc: str = "",
          dtype: torch.dtype = torch.float32, on_batch: Callable[[int, int], None] | None = None) -> History:
    """Train ``model`` in place for ``epochs`` epochs and return its `History`.

    Parameters
    ----------
    model, optimizer
        Already on the data's device; the optimizer over ``model``'s parameters.
    data : ImageData
        On the model's device (`ImageData.to`).
    batch_size : int
        Minibatch size; ``0`` means full batch (one step per epoch on the whole split).
    seed : int
        Resets the global torch RNG at the start; seeds each epoch's order and augmentation.
    l1 : float
        ``lam`` of the objective ``CE + lam * ||theta||_1``.
    penalty : {'autograd', 'report'}, optional
        ``'autograd'``: the L1 term is part of the differentiated loss (NDGM). ``'report'``:
        it is only added to the recorded loss (the optimizer applies it, e.g. a prox step).
        Default: ``'report'`` when the optimizer's parameter groups carry an ``l1`` option
        (`ndgm.sparse.optim`'s proximal optimizers), else ``'autograd'``.
    shuffle, augment : bool
        Shuffle the training split each epoch (else in file order); apply `augment`.
    checkpoint : path, optional
        Written atomically after every epoch; with ``resume=True`` an existing one is loaded
        and training continues from its epoch (a finished one returns its history at once).
    on_batch : callable, optional
        ``on_batch(epoch, batch)`` after every optimizer step (tests use it to interrupt).
    """
    if penalty is None:
        penalty = "report" if any("l1" in g for g in optimizer.param_groups) else "autograd"
    if penalty not in ("autograd", "report"):
        raise NdgmError(f"penalty must be autograd or report, got {penalty!r}")
    n = data.n_train
    bs = n if batch_size == 0 else min(batch_size, n)
    fingerprint = {"n_train": n, "batch_size": bs, "seed": int(seed), "l1": float(l1), "penalty": penalty,
                   "shuffle": bool(shuffle), "augment": bool(augment), "optimizer": type(optimizer).__name__,
                   "n_params": count_parameters(model), "dtype": str(dtype)}
    ckpath = Path(checkpoint) if checkpoint is not None else None
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    history = History()
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.manual_seed(seed)
        start = 0
        if ckpath is not None and resume and ckpath.exists():
            ck = _load_checkpoint(ckpath, fingerprint)
            model.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
            history = History(**ck["history"])
            start = ck["epoch"]
            torch.set_rng_state(ck["rng"])
            if cuda and ck.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ck["cuda_rng"], device)
        if cuda:
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        n_batches = -(-n // bs)
        epochs_bar = tqdm(range(start, epochs), desc=desc or "train", unit="epoch", total=epochs, initial=start,
                          dynamic_ncols=True, disable=not progress)
        for epoch in epochs_bar:
            model.train()
            gen = epoch_generator(seed, epoch)
            order = torch.randperm(n, generator=gen).to(device) if shuffle else torch.arange(n, device=device)
            # Accumulate on the device: one host sync per epoch, not per batch.
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            ce_sum = torch.zeros((), dtype=torch.float64, device=device)
            for b in tqdm(range(n_batches), desc=f"epoch {epoch + 1}", unit="batch", leave=False, dynamic_ncols=True,
                          disable=not progress):
                x, y = data.batch(order[b * bs:(b + 1) * bs], augment_with=gen if augment else None, dtype=dtype)
                ce = nn.functional.cross_entropy(model(x), y)
                if l1 and penalty == "autograd":
                    objective = ce + l1 * l1_norm(model)
                    loss = objective
                else:
                    objective = ce
                    if l1:
                        with torch.no_grad():  # reported, not differentiated: the optimizer applies it
                            loss = ce.detach() + l1 * l1_norm(model)
                    else:
                        loss = ce
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                optimizer.step()
                loss_sum += loss.detach()
                ce_sum += ce.detach()
                if on_batch is not None:
                    on_batch(epoch, b)
            history.train_loss.append(float(loss_sum) / n_batches)
            history.train_ce.append(float(ce_sum) / n_batches)
            vl, va = evaluate(model, data, dtype=dtype)
            history.val_loss.append(vl)
            history.val_acc.append(va)
            with torch.no_grad():
                history.l1.append(float(l1_norm(model)))
            if progress:
                epochs_bar.set_postfix(loss=f"{history.train_loss[-1]:.4g}", val=f"{vl:.4g}")
            if ckpath is not None:
                _atomic_save({"epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "history": asdict(history), "rng": torch.get_rng_state(),
                              "cuda_rng": torch.cuda.get_rng_state(device) if cuda else None,
                              "fingerprint": fingerprint}, ckpath)
    return history


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with the global torch RNG reset to ``seed`` (the paper's "seed reset before
    each model"), leaving the caller's RNG state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def checkpoint_folder(experiment: str, config: dict) -> Path:
    """``<checkpoint_dir>/<experiment>-<hash>``: one folder per configuration (``resume`` and
    the folder itself excluded from the hash, ``device`` by `config_hash`, so a resumed run
    finds its checkpoints); ``checkpoint_dir`` defaults to ``<runs>/checkpoints``."""

    root = Path(config.get("checkpoint_dir") or (DEFAULT_ROOT / "checkpoints"))
    key = {k: v for k, v in config.items() if k not in ("resume", "checkpoint_dir")}
    return root / f"{experiment}-{config_hash(experiment, key)}"


# Modules that draw from the global RNG in training: under vmap every model of a stack would
# get the same draws, which is not K independent runs.
_RANDOM_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class ModelStack:
    """K models of one architecture as one set of stacked parameters, evaluated with ``vmap``.

    ``params[name]`` and ``buffers[name]`` have shape ``(K, *shape)``: slice ``k`` is model ``k``.
    Calling the stack on ``x`` of shape ``(K, B, ...)`` gives ``(K, B, C)``, model ``k``
    applied to ``x[k]``; with ``shared=True`` ``x`` has shape ``(B, ...)`` and every model sees it.

    Parameters
    ----------
    models : sequence of nn.Module
        One architecture (same parameter and buffer names and shapes), one device and dtype,
        no Dropout. Their weights are copied into the stack; `write_back` copies them out.
    """

    def __init__(self, models: Sequence[nn.Module]):
        models = list(models)
        if not models:
            raise NdgmError("a model stack needs at least one model")
        for m in models:
            bad = sorted({type(mod).__name__ for mod in m.modules() if isinstance(mod, _RANDOM_MODULES)})
            if bad:
                raise NdgmError(f"a model stack cannot hold models with {', '.join(bad)} (vmap would give every "
                                "model the same random draws); train them one at a time with train()")
        layout = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in models]
        if any(lay != layout[0] for lay in layout[1:]):
            raise NdgmError("the models of a stack must share one architecture (parameter names and shapes)")
        self.models = models
        self.params, self.buffers = torch.func.stack_module_state(models)
        # The meta copy holds the module structure only; functional_call supplies every tensor.
        self.base = copy.deepcopy(models[0]).to("meta")

    @property
    def size(self) -> int:
        """K, the number of models."""
        return len(self.models)

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    def __call__(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        def one(params, buffers, xi):
            return torch.func.functional_call(self.base, (params, buffers), (xi,))

        return torch.vmap(one, in_dims=(0, 0, None if shared else 0))(self.params, self.buffers, x)

    def parameters(self) -> list[torch.Tensor]:
        """The stacked parameter tensors (leaves an optimizer steps; elementwise rules act per model)."""
        return list(self.params.values())

    def train(self, mode: bool = True) -> "ModelStack":
        self.base.train(mode)
        return self

    def eval(self) -> "ModelStack":
        return self.train(False)

    @property
    def training(self) -> bool:
        return self.base.training

    def l1_norms(self) -> torch.Tensor:
        """``(K,)``: ``||theta_k||_1`` of every model (carrying gradients)."""
        return sum(p.abs().flatten(1).sum(1) for p in self.params.values())

    def numel(self) -> int:
        """Parameters of one model."""
        return sum(p[0].numel() for p in self.params.values())

    def state_dict(self) -> dict:
        return {"params": {k: v.detach().clone() for k, v in self.params.items()},
                "buffers": {k: v.clone() for k, v in self.buffers.items()}}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for k, v in state["params"].items():
            self.params[k].copy_(v)
        for k, v in state["buffers"].items():
            self.buffers[k].copy_(v)

    @torch.no_grad()
    def write_back(self) -> list[nn.Module]:
        """Copy slice ``k`` into model ``k`` (parameters and buffers) and return the models."""
        for k, m in enumerate(self.models):
            for name, t in m.named_parameters():
                t.copy_(self.params[name][k])
            for name, t in m.named_buffers():
                t.copy_(self.buffers[name][k])
        return self.models


@torch.no_grad()
def evaluate_stack(stack: ModelStack, data: ImageData, batch_size: int = 1000,
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """`evaluate` for every model of a stack: ``(K,)`` mean cross-entropy and ``(K,)`` accuracy, eval mode."""
    was_training = stack.training
    stack.eval()
    K, n = stack.size, data.n_val
    total = torch.zeros(K, dtype=torch.float64, device=data.val_y.device)
    correct = torch.zeros(K, dtype=torch.int64, device=data.val_y.device)
    for start in range(0, n, batch_size):
        x, y = data.batch(slice(start, start + batch_size), train=False, dtype=dtype)
        out = stack(x, shared=True)  # (K, b, C)
        ce = nn.functional.cross_entropy(out.flatten(0, 1), y.repeat(K), reduction="none").view(K, -1)
        total += ce.sum(1)
        correct += (out.argmax(-1) == y).sum(1)
    stack.train(was_training)
    return total / max(n, 1), correct.to(torch.float64) / max(n, 1)


def train_stack(stack: ModelStack, data: ImageData, optimizer: torch.optim.Optimizer, *, epochs: int,
                batch_size: int, seeds: Sequence[int], l1: float | Sequence[float] = 0.0, penalty: str | None = None,
                shuffle: bool = True, augment: bool = True, checkpoint: str | Path | None = None, resume: bool = False,
                progress: bool = False, desc: str = "", dtype: torch.dtype = torch.float32,
                on_batch: Callable[[int, int], None] | None = None) -> list[History]:
    """Train the K models of ``stack`` at once; return one `History` per model.

    Model ``k`` is trained as ``train(model_k, ..., seed=seeds[k], l1=l1[k])`` would train it:
    the same batch order and augmentation (from ``epoch_generator(seeds[k], epoch)``), the
    objective ``CE_k + lam_k ||theta_k||_1``. The optimizer is built over
    ``stack.parameters()``; the backward pass differentiates the sum over the models, whose
    gradient in slice ``k`` is model ``k``'s own.

    Parameters
    ----------
    seeds : sequence of int
        One per model. Equal seeds in two stacks (ReLU and GELU, say) give them the same batches.
    l1 : float or sequence of float
        ``lam`` for every model, or one per model (only with ``penalty='autograd'``: a proximal
        optimizer applies one ``l1`` to the whole stacked tensor).
    penalty, shuffle, augment, checkpoint, resume, progress, on_batch
        As in `train`; the checkpoint holds the whole stack.
    """
    K = stack.size
    seeds = [int(s) for s in seeds]
    if len(seeds) != K:
        raise NdgmError(f"train_stack needs one seed per model: {K} models, {len(seeds)} seeds")
    lams = [float(l1)] * K if isinstance(l1, (int, float)) else [float(v) for v in l1]
    if len(lams) != K:
        raise NdgmError(f"train_stack needs one l1 per model: {K} models, {len(lams)} values")
    if penalty is None:
        penalty = "report" if any("l1" in g for g in optimizer.param_groups) else "autograd"
    if penalty not in ("autograd", "report"):
        raise NdgmError(f"penalty must be autograd or report, got {penalty!r}")
    if penalty == "report" and len(set(lams)) > 1:
        raise NdgmError("a stack trained by a proximal optimizer has one l1 for all its models")
    n = data.n_train
    bs = n if batch_size == 0 else min(batch_size, n)
    fingerprint = {"n_train": n, "batch_size": bs, "seeds": seeds, "l1": lams, "penalty": penalty,
                   "shuffle": bool(shuffle), "augment": bool(augment), "optimizer": type(optimizer).__name__,
                   "n_params": stack.numel(), "models": K, "dtype": str(dtype)}
    ckpath = Path(checkpoint) if checkpoint is not None else None
    device = stack.device
    cuda = device.type == "cuda"
    lam = torch.tensor(lams, dtype=dtype, device=device)
    any_l1 = any(v != 0 for v in lams)
    histories = [History() for _ in range(K)]
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.manual_seed(seeds[0])  # nothing in a stack draws from it (no Dropout); reset as train() does
        start = 0
        if ckpath is not None and resume and ckpath.exists():
            ck = _load_checkpoint(ckpath, fingerprint)
            stack.load_state_dict(ck["stack"])
            optimizer.load_state_dict(ck["optimizer"])
            histories = [History(**h) for h in ck["history"]]
            start = ck["epoch"]
        if cuda:
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        n_batches = -(-n // bs)
        epochs_bar = tqdm(range(start, epochs), desc=desc or "train", unit="epoch", total=epochs, initial=start,
                          dynamic_ncols=True, disable=not progress)
        for epoch in epochs_bar:
            stack.train()
            gens = [epoch_generator(s, epoch) for s in seeds]
            orders = [torch.randperm(n, generator=g).to(device) if shuffle else torch.arange(n, device=device)
                      for g in gens]
            loss_sum = torch.zeros(K, dtype=torch.float64, device=device)
            ce_sum = torch.zeros(K, dtype=torch.float64, device=device)
            for b in range(n_batches):
                pairs = [data.batch(orders[k][b * bs:(b + 1) * bs], augment_with=gens[k] if augment else None,
                                    dtype=dtype) for k in range(K)]
                x = torch.stack([p[0] for p in pairs])
                y = torch.stack([p[1] for p in pairs])
                out = stack(x)
                ce = nn.functional.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(K, -1).mean(1)
                if any_l1 and penalty == "autograd":
                    loss = ce + lam * stack.l1_norms()
                    objective = loss.sum()
                else:
                    objective = ce.sum()
                    if any_l1:
                        with torch.no_grad():
                            loss = ce.detach() + lam * stack.l1_norms()
                    else:
                        loss = ce
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                optimizer.step()
                loss_sum += loss.detach()
                ce_sum += ce.detach()
                if on_batch is not None:
                    on_batch(epoch, b)
            vl, va = evaluate_stack(stack, data, dtype=dtype)
            with torch.no_grad():
                l1s = stack.l1_norms()
            columns = [(loss_sum / n_batches).tolist(), (ce_sum / n_batches).tolist(), vl.tolist(), va.tolist(),
                       l1s.tolist()]
            for k, h in enumerate(histories):
                h.train_loss.append(columns[0][k])
                h.train_ce.append(columns[1][k])
                h.val_loss.append(columns[2][k])
                h.val_acc.append(columns[3][k])
                h.l1.append(columns[4][k])
            if progress:
                epochs_bar.set_postfix(loss=f"{min(columns[0]):.4g}..{max(columns[0]):.4g}")
            if ckpath is not None:
                _atomic_save({"epoch": epoch + 1, "stack": stack.state_dict(), "optimizer": optimizer.state_dict(),
                              "history": [asdict(h) for h in histories], "fingerprint": fingerprint}, ckpath)
    return histories
