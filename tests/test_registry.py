"""The one name registry: every method builds, aliases are the same method, every consumer reads it."""

import numpy as np
import pytest
import torch

from ndgm import registry
from ndgm.dynamics import make_rule
from ndgm.errors import NdgmError
from ndgm.sparse import L1Regression
from ndgm.training import NDGM, OPTIMIZERS, PROX, make_optimizer

# spellings stored in configs and in the claims ledger: each must stay a canonical name
STORED = ("sgd", "momentum", "rmsprop", "adam", "prox-sgd", "prox-adam", "rda", "acrda", "ista", "fista")


def test_stored_spellings_are_canonical_and_aliases_resolve():
    assert set(STORED) == set(registry.names())
    for m in registry.METHODS:
        assert registry.get(m.name) is m
        for alias in m.aliases:
            assert registry.get(alias) is m and registry.get(alias.upper()) is m
    spellings = [s for m in registry.METHODS for s in (m.name, *m.aliases)]
    assert len(spellings) == len(set(spellings))


@pytest.mark.parametrize("name", registry.names())
def test_every_method_builds_what_it_declares(name):
    m = registry.get(name)
    assert m.family in registry.FAMILIES and (m.rule or m.optimizer or m.solver)
    if m.rule:
        rule = m.build_rule()
        W = torch.ones(2, 3, dtype=torch.float64)
        W1, _ = rule.step(W, torch.ones_like(W), torch.tensor([0.1, 0.2], dtype=torch.float64), rule.init(W), 1)
        assert W1.shape == W.shape and bool((W1 < W).all())
    else:
        with pytest.raises(NdgmError, match="does not fit here; choose one of sgd"):
            make_rule(name)  # the message names the family and the choices
    if m.optimizer:
        w = torch.zeros(3, requires_grad=True)
        opt = m.build_optimizer([w], lr=0.1, l1=0.5)
        assert isinstance(opt, torch.optim.Optimizer) and isinstance(opt, m.optimizer_class())
        assert ("l1" in opt.param_groups[0]) == (m.family == "prox")
        assert getattr(opt, "needs_closure", False) == m.needs_closure
    if m.solver:
        assert callable(m.solver_function())


def test_consumers_read_the_registry():
    assert type(make_rule("ndgm")) is type(make_rule("sgd")) is type(make_rule("gd"))
    # l1-deep's defaults are these tuples: they must stay the paper's three NDGM optimizers and their
    # two proximal counterparts
    assert NDGM == ("sgd", "rmsprop", "adam") and PROX == ("prox-sgd", "prox-adam")
    assert not any(registry.get(n).needs_closure for n in OPTIMIZERS)
    for name in OPTIMIZERS:
        make_optimizer(name, [torch.zeros(2, requires_grad=True)], 0.1, l1=0.1)
    with pytest.raises(NdgmError, match="unknown optimizer 'lbfgs'; choose one of sgd"):
        make_rule("lbfgs")
    with pytest.raises(NdgmError, match="acrda"):
        make_optimizer("acrda", [torch.zeros(2, requires_grad=True)], 0.1)  # it needs a closure: not for train()
    X = np.eye(4)[:, :3] + 0.1
    y = np.arange(4.0)
    for name in registry.names():  # the estimator accepts every registered method
        est = L1Regression(method=name, alpha=0.01, max_iter=20).fit(X, y)
        assert est.coef_.shape == (3,), name
    with pytest.raises(ValueError, match="method must be one of sgd, momentum"):
        L1Regression(method="proxsgd2").fit(X, y)
