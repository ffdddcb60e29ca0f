"""One name registry for every update rule, optimizer and solver ndgm runs.

Each `Method` has one canonical name (the spelling stored in configs and the claims ledger),
its aliases, a family and the objects that implement it:

* family ``'ndgm'``: the penalty's kink is differentiated as autodiff does (``sgn(0) = 0``):
  a batched update rule for the engine (`ndgm.dynamics.rules`) and, where torch has it, the
  ``torch.optim`` optimizer that the deep-network training loop uses;
* family ``'prox'``: proximal ``torch.optim`` optimizers with an ``l1`` group option
  (`ndgm.sparse.optim`);
* family ``'solver'``: full-batch solvers of a datafit + penalty (`ndgm.sparse.solvers`).

Implementations are named as ``'module:attribute'`` strings and imported when built, so this
module imports nothing of ndgm but its errors: the engine, the training loop, the estimator and
the experiments' validation all read it without an import cycle.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .errors import NdgmError

__all__ = ["Method", "METHODS", "FAMILIES", "get", "names"]

FAMILIES = {
    "ndgm": "NDGM update rule (the kink differentiated by autodiff)",
    "prox": "proximal torch optimizer (soft thresholding in the step)",
    "solver": "full-batch solver (datafit + penalty)",
}


def _load(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Method:
    """A registered method.

    Attributes
    ----------
    name : str
        Canonical spelling.
    family : str
        One of `FAMILIES`.
    aliases : tuple of str
        Other accepted spellings.
    default_lr : float or None
        Step size when none is given; None means ``1/L`` (``L`` the smoothness of the problem).
    rule, optimizer, solver : str or None
        ``'module:attribute'`` of the batched update rule, the ``torch.optim.Optimizer`` class and
        the full-batch solver function; None where the method has none.
    needs_closure : bool
        The optimizer's ``step`` must be given a closure (it evaluates the gradient itself).
    counterpart : str or None
        For a proximal method, the NDGM method whose step it makes proximal (``prox-sgd``: ``sgd``):
        the pairs the paper compares (the deep-network training loop runs these).
    """

    name: str
    family: str
    aliases: tuple[str, ...] = ()
    default_lr: float | None = None
    rule: str | None = None
    optimizer: str | None = None
    solver: str | None = None
    needs_closure: bool = False
    counterpart: str | None = None
    description: str = ""

    def build_rule(self, **hyper):
        """The engine's batched update rule, e.g. ``Adam()``."""
        if self.rule is None:
            raise NdgmError(f"{self.name!r} has no batched update rule; choose one of {', '.join(names(has='rule'))}")
        return _load(self.rule)(**hyper)

    def build_optimizer(self, params, lr: float, l1: float = 0.0):
        """The ``torch.optim`` optimizer over ``params`` with library defaults. A proximal one gets the
        L1 weight ``l1`` (it applies the penalty in its step); an NDGM one does not (the penalty is part
        of the differentiated loss)."""
        if self.optimizer is None:
            raise NdgmError(f"{self.name!r} has no torch optimizer; choose one of {', '.join(names(has='optimizer'))}")
        cls = _load(self.optimizer)
        return cls(params, lr=lr, l1=l1) if self.family == "prox" else cls(params, lr=lr)

    def optimizer_class(self):
        """The ``torch.optim.Optimizer`` subclass."""
        if self.optimizer is None:
            raise NdgmError(f"{self.name!r} has no torch optimizer; choose one of {', '.join(names(has='optimizer'))}")
        return _load(self.optimizer)

    def solver_function(self):
        """The full-batch solver, ``f(datafit, penalty, **kwargs) -> SolverResult``."""
        if self.solver is None:
            raise NdgmError(f"{self.name!r} is not a full-batch solver; choose one of {', '.join(names(has='solver'))}")
        return _load(self.solver)


METHODS: tuple[Method, ...] = (
    Method("sgd", "ndgm", ("gd", "ndgm"), None, "ndgm.dynamics.rules:GD", "torch.optim:SGD",
           description="(sub)gradient descent, NDGM"),
    Method("momentum", "ndgm", (), None, "ndgm.dynamics.rules:Momentum",
           description="heavy-ball momentum (torch.optim.SGD with momentum 0.9)"),
    Method("rmsprop", "ndgm", (), 1e-3, "ndgm.dynamics.rules:RMSProp", "torch.optim:RMSprop", description="RMSProp"),
    Method("adam", "ndgm", (), 1e-3, "ndgm.dynamics.rules:Adam", "torch.optim:Adam", description="Adam"),
    Method("prox-sgd", "prox", ("proxsgd",), None, optimizer="ndgm.sparse.optim:ProxSGD", counterpart="sgd",
           description="proximal SGD (soft thresholding after the step)"),
    Method("prox-adam", "prox", ("proxadam",), 1e-3, optimizer="ndgm.sparse.optim:ProxAdam", counterpart="adam",
           description="Adam's step, then a soft threshold in Adam's metric"),
    Method("rda", "prox", (), None, optimizer="ndgm.sparse.optim:RDA",
           description="l1-regularised dual averaging (Xiao 2009), O(1/sqrt t)"),
    Method("acrda", "prox", ("ac-rda",), None, optimizer="ndgm.sparse.optim:AcceleratedRDA", needs_closure=True,
           description="accelerated RDA (Xiao 2010 sec. 6), O(L/t^2)"),
    Method("ista", "solver", (), None, solver="ndgm.sparse.solvers:ista",
           description="proximal gradient with backtracking"),
    Method("fista", "solver", (), None, solver="ndgm.sparse.solvers:fista",
           description="FISTA with backtracking and gradient restart"),
)

_BY_NAME = {spelling: m for m in METHODS for spelling in (m.name, *m.aliases)}
assert len(_BY_NAME) == sum(1 + len(m.aliases) for m in METHODS), "a spelling is registered twice"
assert all(m.family in FAMILIES for m in METHODS)
assert all(_BY_NAME[m.counterpart].family == "ndgm" for m in METHODS if m.counterpart)


def names(family: str | None = None, has: str | None = None) -> tuple[str, ...]:
    """Canonical names in registry order, optionally of one family and/or with an implementation
    ``has`` in ``('rule', 'optimizer', 'solver')``."""
    if family is not None and family not in FAMILIES:
        raise NdgmError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    if has not in (None, "rule", "optimizer", "solver"):
        raise NdgmError(f"has must be rule, optimizer or solver, got {has!r}")
    return tuple(m.name for m in METHODS
                 if (family is None or m.family == family) and (has is None or getattr(m, has) is not None))


def get(name: str, family: str | None = None, has: str | None = None) -> Method:
    """The method called ``name`` (canonical or alias, any case); `NdgmError` naming the choices
    (of ``family`` / with ``has``, if given) when there is none."""
    choices = names(family, has)
    m = _BY_NAME.get(name.lower()) if isinstance(name, str) else None
    if m is None or m.name not in choices:
        aliases = [a for c in choices for a in _BY_NAME[c].aliases]
        more = f" (aliases: {', '.join(aliases)})" if aliases else ""
        what = f"unknown optimizer {name!r}" if m is None else f"{name!r} (family {m.family!r}) does not fit here"
        raise NdgmError(f"{what}; choose one of {', '.join(choices)}{more}")
    return m
