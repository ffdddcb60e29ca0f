"""The batched update rules are bit-identical to torch.optim in float64 (one case list)."""

import pytest
import torch

from ndgm.dynamics import GD, Adam, Momentum, RMSProp

CASES = [
    ("sgd", GD(), lambda p, lr: torch.optim.SGD(p, lr=lr)),
    ("momentum", Momentum(0.9), lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)),
    ("momentum-damp", Momentum(0.8, dampening=0.3), lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.8, dampening=0.3)),
    ("nesterov", Momentum(0.9, nesterov=True), lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True)),
    ("rmsprop", RMSProp(), lambda p, lr: torch.optim.RMSprop(p, lr=lr)),
    ("rmsprop-alpha", RMSProp(alpha=0.9, eps=1e-6), lambda p, lr: torch.optim.RMSprop(p, lr=lr, alpha=0.9, eps=1e-6)),
    ("adam", Adam(), lambda p, lr: torch.optim.Adam(p, lr=lr)),
    ("adam-betas", Adam(0.5, 0.9, 1e-6), lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.5, 0.9), eps=1e-6)),
]


@pytest.mark.parametrize("name,rule,make_opt", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("d", [1, 7, 500])
def test_rule_bitwise_equals_torch_optim(name, rule, make_opt, d):
    K, steps = 4, 30
    g = torch.Generator().manual_seed(d)
    W0 = torch.randn(K, d, generator=g, dtype=torch.float64)
    grads = torch.randn(steps, K, d, generator=g, dtype=torch.float64)
    grads[5, :, : max(1, d // 3)] = 0.0  # exact zeros, as at a kink
    lrs = torch.tensor([1e-3, 0.01, 0.1, 0.7], dtype=torch.float64)

    W = W0.clone()
    state = rule.init(W)
    for t in range(steps):
        W, state = rule.step(W, grads[t], lrs, state, t + 1)

    for k in range(K):
        p = torch.nn.Parameter(W0[k].clone())
        opt = make_opt([p], lrs[k].item())
        for t in range(steps):
            p.grad = grads[t, k].clone()
            opt.step()
        assert torch.equal(p.detach(), W[k]), f"{name}: config {k} differs from torch.optim"


@pytest.mark.parametrize("name,rule,make_opt", CASES, ids=[c[0] for c in CASES])
def test_rule_is_a_pure_function_of_gradient_and_state(name, rule, make_opt):
    g = torch.Generator().manual_seed(0)
    W, G = torch.randn(2, 2, 5, generator=g, dtype=torch.float64)  # (K, d) = (2, 5) each
    lr = torch.tensor([0.1, 0.2], dtype=torch.float64)
    state = rule.init(W)
    _, state = rule.step(W, G, lr, state, 1)  # a state with tensors in it (momentum's buffer appears now)
    inputs = [W, G, lr, *state.values()]
    before = [x.clone() for x in inputs]
    W1, state1 = rule.step(W, G, lr, state, 2)
    assert all(torch.equal(x, b) for x, b in zip(inputs, before)), f"{name} modified an input"
    W2, state2 = rule.step(W, G, lr, state, 2)  # same inputs, same outputs
    assert torch.equal(W1, W2) and all(torch.equal(state1[k], state2[k]) for k in state1)
