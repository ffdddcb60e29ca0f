"""Proximal optimizers as torch optimizers: torch's steps bit for bit, exact zeros that survive, group zeros,
resume, lr and lam schedules, foreach, bfloat16, torch.compile, the two ProxAdam thresholds, RDA from the
initial point, AC-RDA and parameters without gradient, the parameter-group helper."""

import functools
import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from ndgm.errors import NdgmError
from ndgm.problems import ElasticNetPenalty, GroupL2Penalty, L1NormPenalty, SparseGroupPenalty, soft_threshold
from ndgm.sparse import (RDA, AcceleratedRDA, LamScheduler, ProxAdam, ProxAdamW, ProxSGD, group_penalty,
                         penalised_groups)

pytestmark = pytest.mark.usefixtures("one_thread")


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bit pattern (so that -0.0 and 0.0 differ)."""
    return t.detach().contiguous().view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def same_bits(a, b) -> bool:
    return all(torch.equal(bits(x), bits(y)) for x, y in zip(a, b))


@functools.lru_cache(maxsize=None)
def digits(n: int, dtype: torch.dtype):
    from ndgm.data.digits import load_digits_split

    return load_digits_split(seed=0, n_train=n, dtype=dtype)


def digits_mlp_problem(seed=0, dtype=torch.float64, n=256):
    d = digits(n, dtype)
    g = torch.Generator().manual_seed(seed)

    def build():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).to(dtype)
    return d, build, g


def loss_fn(model, X, y, scale=1.0):
    return scale * nn.functional.cross_entropy(model(X), y)


def run(model, opt, X, y, steps, batch=32, seed=0, scale=1.0, after=None):
    g = torch.Generator().manual_seed(seed)
    for k in range(steps):
        idx = torch.randint(0, X.shape[0], (batch,), generator=g)
        opt.zero_grad()
        loss_fn(model, X[idx], y[idx], scale).backward()
        opt.step()
        if after is not None:
            after(k)
    return [p.detach().clone() for p in model.parameters()]


# ----------------------------------------------------------------------------- torch's steps, bit for bit

SGD_CASES = [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True), dict(momentum=0.8, dampening=0.3),
             dict(momentum=0.9, weight_decay=1e-2), dict(weight_decay=5e-3)]


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("kw", SGD_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "plain")
def test_proxsgd_without_penalty_is_torch_sgd_bit_for_bit(kw, foreach):
    d, build, _ = digits_mlp_problem()
    a, b = build(), build()
    ours = run(a, ProxSGD(a.parameters(), lr=0.05, foreach=foreach, **kw), d.X_train, d.y_train, 25)
    ref = run(b, torch.optim.SGD(b.parameters(), lr=0.05, foreach=foreach, **kw), d.X_train, d.y_train, 25)
    assert same_bits(ours, ref)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("cls,ref_cls,kw", [(ProxAdam, torch.optim.Adam, dict()),
                                            (ProxAdam, torch.optim.Adam, dict(weight_decay=1e-2)),
                                            (ProxAdamW, torch.optim.AdamW, dict()),
                                            (ProxAdamW, torch.optim.AdamW, dict(weight_decay=0.1, betas=(0.8, 0.99)))],
                         ids=["adam", "adam-wd", "adamw", "adamw-wd"])
def test_proxadam_without_penalty_is_torch_adam_bit_for_bit(cls, ref_cls, kw, foreach):
    d, build, _ = digits_mlp_problem()
    a, b = build(), build()
    ours = run(a, cls(a.parameters(), lr=3e-3, foreach=foreach, **kw), d.X_train, d.y_train, 25)
    ref = run(b, ref_cls(b.parameters(), lr=3e-3, foreach=foreach, **kw), d.X_train, d.y_train, 25)
    assert same_bits(ours, ref)


class PreviousProxAdam(torch.optim.Optimizer):
    """The previous release's ProxAdam step, verbatim: the reference the default must keep, bit for bit."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, l1=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, l1=l1))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, l1, eps = group["lr"], group["l1"], group["eps"]
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(p.grad, 1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (v.sqrt() / (1 - b2**t) ** 0.5).add_(eps)
                p.addcdiv_(m, denom, value=-(lr / (1 - b1**t)))
                if l1 > 0:
                    p.copy_(soft_threshold(p, (lr * l1) / denom))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("foreach", [False, True])
def test_proxadam_default_threshold_is_the_previous_release_bit_for_bit(dtype, foreach):
    d, build, _ = digits_mlp_problem(dtype=dtype)
    a, b = build(), build()
    opt = ProxAdam(a.parameters(), lr=3e-3, l1=3e-2, foreach=foreach)
    assert opt.param_groups[0]["threshold"] == "preconditioned"
    ours = run(a, opt, d.X_train, d.y_train, 40)
    ref = run(b, PreviousProxAdam(b.parameters(), lr=3e-3, l1=3e-2), d.X_train, d.y_train, 40)
    assert same_bits(ours, ref)  # -0.0 included
    assert sum(int((p == 0).sum()) for p in ours) > 100


def test_proxsgd_equals_the_previous_release_up_to_the_sign_of_zero():
    d, build, _ = digits_mlp_problem(dtype=torch.float32)
    a, b = build(), build()
    ours = run(a, ProxSGD(a.parameters(), lr=0.1, l1=1e-2), d.X_train, d.y_train, 40)

    def previous_step(params, lr, l1):  # the previous release: p <- soft_threshold(p - lr g, lr l1)
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-lr)
                p.copy_(soft_threshold(p, lr * l1))

    class Previous:
        def zero_grad(self):
            for p in b.parameters():
                p.grad = None

        def step(self):
            previous_step(list(b.parameters()), 0.1, 1e-2)
    ref = run(b, Previous(), d.X_train, d.y_train, 40)
    assert all(torch.equal(x, y) for x, y in zip(ours, ref))  # == everywhere (-0.0 == 0.0)
    assert sum(int((p == 0).sum()) for p in ours) > 100


@pytest.mark.parametrize("make", [
    lambda ps, fe: ProxSGD(ps, lr=0.05, momentum=0.9, nesterov=True, l1=1e-3, foreach=fe),
    lambda ps, fe: ProxSGD(ps, lr=0.05, momentum=0.9, penalty=GroupL2Penalty(2e-2), foreach=fe),
    lambda ps, fe: ProxSGD(ps, lr=0.05, penalty=ElasticNetPenalty(1e-3, 1e-2), weight_decay=1e-3, foreach=fe),
    lambda ps, fe: ProxAdam(ps, lr=3e-3, l1=1e-2, threshold="uniform", foreach=fe),
    lambda ps, fe: ProxAdam(ps, lr=3e-3, penalty=GroupL2Penalty(1e-2), foreach=fe),
    lambda ps, fe: ProxAdamW(ps, lr=3e-3, penalty=SparseGroupPenalty(1e-3, 0.0, 1e-2), threshold="uniform",
                             foreach=fe),
], ids=["sgd-nesterov-l1", "sgd-group", "sgd-elastic", "adam-uniform-l1", "adam-group", "adamw-sparse-group"])
def test_foreach_and_per_tensor_steps_agree_bit_for_bit(make):
    d, build, _ = digits_mlp_problem(dtype=torch.float32)
    a, b = build(), build()
    one = run(a, make(a.parameters(), False), d.X_train, d.y_train, 20)
    many = run(b, make(b.parameters(), True), d.X_train, d.y_train, 20)
    assert same_bits(one, many)


# ----------------------------------------------------------------------------- the prox, exact zeros, groups

def test_one_step_is_the_base_step_then_the_group_prox():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        W[2] *= 0.05  # a row the group term zeroes
    W0, b0 = W.detach().clone(), b.detach().clone()
    pen = SparseGroupPenalty(l1=0.1, l2=0.05, group=0.9)
    opt = ProxSGD([{"params": [W], "penalty": pen}, {"params": [b]}], lr=0.5, momentum=0.9)
    W.grad = torch.randn(5, 4, generator=g, dtype=torch.float64)
    W.grad[2] *= 0.05
    b.grad = torch.randn(5, generator=g, dtype=torch.float64)
    gW, gb = W.grad.clone(), b.grad.clone()
    opt.step()
    assert torch.equal(W.detach(), pen.prox(W0 - 0.5 * gW, 0.5))
    assert torch.equal(b.detach(), b0 - 0.5 * gb)  # the second group has no penalty
    assert opt.param_groups[0]["group_l2"] == 0.9 and opt.param_groups[1]["l1"] == 0.0
    assert bool(pen.zero_groups(W.detach()).any())
    # the Adam metric: the prox with the per-coordinate step lr / D
    W2 = W0.clone().requires_grad_(True)
    opt2 = ProxAdam([W2], lr=0.5, penalty=pen)
    W2.grad = gW.clone()
    opt2.step()
    D = (0.001 * gW**2).sqrt() / math.sqrt(1 - 0.999) + 1e-8
    expected = pen.prox(W0 - 0.5 * (0.1 * gW / 0.1) / D, 0.5 / D)
    torch.testing.assert_close(W2.detach(), expected, rtol=1e-14, atol=1e-15)


def test_exact_zeros_survive_steps_while_the_gradient_is_inside_the_threshold():
    w = torch.tensor([0.0, 0.0, 0.0, 0.5], dtype=torch.float64, requires_grad=True)
    opt = ProxSGD([w], lr=0.1, l1=1.0, momentum=0.5)
    for _ in range(30):  # |momentum direction| <= 0.9 / (1 - 0.5) ... stays within l1 for the first three
        w.grad = torch.tensor([0.3, -0.45, 0.49, 0.0], dtype=torch.float64)
        opt.step()
        assert w[:3].tolist() == [0.0, 0.0, 0.0]
    w.grad = torch.tensor([0.0, 0.0, 5.0, 0.0], dtype=torch.float64)
    opt.step()
    assert w[2].item() < 0  # a large enough gradient moves it off zero
    assert w[3].item() == 0.0  # shrunk by 0.1 per step, it reached 0 and stays


def train_group_sparse(opt_factory, steps=150, seed=0):
    d, build, _ = digits_mlp_problem(seed=seed)
    model = build()
    opt = opt_factory(model)
    run(model, opt, d.X_train, d.y_train, steps, seed=seed)
    return model, opt, d


@pytest.mark.parametrize("factory,rows,acc", [
    (lambda m: ProxSGD(penalised_groups(m, GroupL2Penalty(0.1)), lr=0.2, momentum=0.9), 3, 0.9),
    (lambda m: ProxAdam(penalised_groups(m, GroupL2Penalty(0.03)), lr=1e-2), 3, 0.9),
    (lambda m: ProxAdam(penalised_groups(m, GroupL2Penalty(4.0)), lr=1e-2, threshold="uniform"), 1, 0.7),
], ids=["sgd", "adam-preconditioned", "adam-uniform"])
def test_group_l2_zeroes_whole_neurons_and_only_whole_neurons(factory, rows, acc):
    model, opt, d = train_group_sparse(factory)
    W = model[0].weight.detach()
    zero_rows = (W == 0).all(1)
    assert rows <= int(zero_rows.sum()) < 32, int(zero_rows.sum())
    # no scattered zeros: the penalty is on rows. (Weights of pixels that are 0 in every image have no
    # gradient; Adam's D is eps there and the preconditioned prox shrinks them by ~1e-9 per step to 0.)
    live = (d.X_train != 0).any(0)
    assert int((W[~zero_rows][:, live] == 0).sum()) == 0
    assert int((model[0].bias == 0).sum()) == 0  # biases unpenalised
    assert accuracy(model, d) > acc


def test_certificate_of_a_group_lasso_reaches_zero_full_batch():
    rs = np.random.RandomState(0)
    X = torch.as_tensor(rs.randn(80, 12))
    Y = torch.as_tensor(X[:, :3].numpy() @ rs.randn(3, 4) + 0.1 * rs.randn(80, 4))
    W = torch.zeros(12, 4, dtype=torch.float64, requires_grad=True)  # rows: one group per input feature
    L = float(torch.linalg.eigvalsh(X.T @ X / 80)[-1])
    opt = ProxSGD([W], lr=1 / L, group_l2=0.3)
    for _ in range(300):
        opt.zero_grad()
        ((X @ W - Y) ** 2).sum().div(2 * 80).backward()
        opt.step()
    opt.zero_grad()
    ((X @ W - Y) ** 2).sum().div(2 * 80).backward()
    assert opt.certificate() < 1e-10
    rows = (W.detach() == 0).all(1)
    assert 3 <= int(rows.sum()) <= 9 and not bool(rows[:3].any())  # the three true features kept
    # the smallest group weight that zeroes everything: max row norm of the gradient at 0
    g0 = -(X.T @ Y) / 80
    assert float(GroupL2Penalty(1.0).alpha_max(g0)) == pytest.approx(float(g0.norm(dim=1).max()))


# ----------------------------------------------------------------------------- the two ProxAdam thresholds

def test_preconditioned_threshold_sees_the_loss_scale_and_uniform_does_not():
    """Loss x4 (eps = 0, where Adam's direction is exactly scale-free; powers of two, so bit for bit): the
    preconditioned threshold acts as l1 / 4, the uniform one gives the same iterates."""
    d, build, _ = digits_mlp_problem(dtype=torch.float32)
    # no pixel is 0 in every image: with eps = 0 a weight without gradient would divide 0 by 0
    X = d.X_train + 1e-2 * torch.randn(d.X_train.shape, generator=torch.Generator().manual_seed(5))
    y = d.y_train
    runs = {}
    for name, l1, scale, th in (("pre", 0.02, 4.0, "preconditioned"), ("pre/4", 0.005, 1.0, "preconditioned"),
                                ("uni", 0.02, 4.0, "uniform"), ("uni1", 0.02, 1.0, "uniform")):
        m = build().float()
        runs[name] = run(m, ProxAdam(m.parameters(), lr=3e-3, l1=l1, eps=0.0, threshold=th), X, y, 30, scale=scale)
    assert same_bits(runs["pre"], runs["pre/4"])
    assert same_bits(runs["uni"], runs["uni1"])
    zeros = {k: sum(int((p == 0).sum()) for p in v) for k, v in runs.items()}
    assert zeros["pre"] > 0 and zeros["uni"] > 0


def zero_fraction(params) -> float:
    return sum(int((p == 0).sum()) for p in params) / sum(p.numel() for p in params)


def test_uniform_threshold_zeroes_less_where_adams_denominator_is_small():
    # a parameter with no gradient: D = eps, so the preconditioned threshold lr l1 / eps wipes it out at once,
    # while the uniform one shrinks it by lr l1 per step
    w = torch.tensor([0.5, -0.5], dtype=torch.float64, requires_grad=True)
    v = w.detach().clone().requires_grad_(True)
    pre, uni = ProxAdam([w], lr=1e-3, l1=1e-3), ProxAdam([v], lr=1e-3, l1=1e-3, threshold="uniform")
    for o, p in ((pre, w), (uni, v)):
        p.grad = torch.zeros(2, dtype=torch.float64)
        o.step()
    assert w.tolist() == [0.0, 0.0]
    assert v.tolist() == pytest.approx([0.5 - 1e-6, -0.5 + 1e-6], abs=1e-15)


# ----------------------------------------------------------------------------- resume, schedules

FACTORIES = {
    "sgd": lambda m: ProxSGD(penalised_groups(m, 1e-3), lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda m: ProxAdam(penalised_groups(m, GroupL2Penalty(1e-2)), lr=3e-3),
    "adamw-uniform": lambda m: ProxAdamW(penalised_groups(m, 1.0), lr=3e-3, threshold="uniform"),
    "rda": lambda m: RDA(penalised_groups(m, 1e-3), lr=0.05),
}


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw-uniform", "rda"])
def test_state_dict_resume_is_bit_identical_with_lr_and_lam_schedules(name):
    factory = FACTORIES[name]
    d, build, _ = digits_mlp_problem(dtype=torch.float32)
    X, y = d.X_train, d.y_train

    def fresh():
        m = build().float()
        opt = factory(m)
        lr_s = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)
        lam_s = LamScheduler(opt, LamScheduler.linear_warmup(10))
        return m, opt, lr_s, lam_s

    def train(m, opt, lr_s, lam_s, start, stop):
        g = torch.Generator().manual_seed(1000 + start)
        for k in range(start, stop):
            g.manual_seed(1000 + k)
            idx = torch.randint(0, X.shape[0], (32,), generator=g)
            opt.zero_grad()
            loss_fn(m, X[idx], y[idx]).backward()
            opt.step()
            lr_s.step()
            lam_s.step()

    m1, o1, l1s, k1 = fresh()
    train(m1, o1, l1s, k1, 0, 24)
    m2, o2, l2s, k2 = fresh()
    train(m2, o2, l2s, k2, 0, 11)
    buf = io.BytesIO()
    torch.save({"model": m2.state_dict(), "optimizer": o2.state_dict(), "lr": l2s.state_dict(),
                "lam": k2.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)  # plain numbers and tensors only
    m3, o3, l3s, k3 = fresh()
    m3.load_state_dict(ck["model"])
    o3.load_state_dict(ck["optimizer"])
    l3s.load_state_dict(ck["lr"])
    k3.load_state_dict(ck["lam"])
    train(m3, o3, l3s, k3, 11, 24)
    assert same_bits(list(m1.parameters()), list(m3.parameters()))
    assert [g["lr"] for g in o3.param_groups] == [g["lr"] for g in o1.param_groups]
    assert [g["l1"] for g in o3.param_groups] == [g["l1"] for g in o1.param_groups]
    assert sum(int((p == 0).sum()) for p in m1.parameters()) > 0


def test_lam_scheduler_sets_the_weights_like_lambda_lr():
    w = torch.zeros(3, requires_grad=True)
    b = torch.zeros(3, requires_grad=True)
    opt = ProxSGD([{"params": [w], "penalty": SparseGroupPenalty(0.2, 0.1, 0.4)}, {"params": [b], "l1": 0.0}], lr=1.0)
    sched = LamScheduler(opt, LamScheduler.linear_warmup(4))
    assert sched.get_last_lam()[0] == {"l1": 0.0, "l2": 0.0, "group_l2": 0.0}
    for k in range(1, 7):
        sched.step()
        f = min(1.0, k / 4)
        assert sched.get_last_lam()[0] == pytest.approx({"l1": 0.2 * f, "l2": 0.1 * f, "group_l2": 0.4 * f})
    assert opt.param_groups[0]["initial_lam"] == {"l1": 0.2, "l2": 0.1, "group_l2": 0.4}
    assert group_penalty(opt.param_groups[0]) == SparseGroupPenalty(0.2, 0.1, 0.4)
    # the threshold a step uses is the scheduled one: lr * l1 at the current step
    w.grad = torch.tensor([-0.1, -0.25, 0.0])
    opt.param_groups[0]["l2"] = opt.param_groups[0]["group_l2"] = 0.0
    opt.step()
    assert w.tolist() == pytest.approx([0.0, 0.05, 0.0])
    with pytest.raises(NdgmError, match="finite number >= 0"):
        LamScheduler(opt, lambda k: -1.0)
    with pytest.raises(NdgmError, match="l1, l2 and group_l2"):
        LamScheduler(torch.optim.SGD([w], lr=0.1), lambda k: 1.0)


def test_lr_scheduler_scales_the_threshold():
    w = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
    opt = ProxSGD([w], lr=0.1, l1=1.0)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    shrink = []
    for _ in range(3):
        before = w.detach().clone()
        w.grad = torch.zeros(2, dtype=torch.float64)
        opt.step()
        sched.step()
        shrink.append(float(before[0] - w[0]))
    assert shrink == pytest.approx([0.1, 0.05, 0.025], rel=1e-12)


# ----------------------------------------------------------------------------- dtypes, compile

@pytest.mark.parametrize("factory", [lambda ps: ProxSGD(ps, lr=0.1, momentum=0.9, l1=1e-2),
                                     lambda ps: ProxAdam(ps, lr=3e-3, l1=1e-2),
                                     lambda ps: ProxAdam(ps, lr=3e-3, penalty=GroupL2Penalty(2e-2))],
                         ids=["sgd", "adam", "adam-group"])
def test_bfloat16_parameters_keep_their_dtype_and_get_exact_zeros(factory):
    d, build, _ = digits_mlp_problem(dtype=torch.float32)
    m16 = build().to(torch.bfloat16)
    m32 = build().float()
    with torch.no_grad():  # the same starting point in both
        for a, b in zip(m32.parameters(), m16.parameters()):
            a.copy_(b.float())
    p16 = run(m16, factory(m16.parameters()), d.X_train.to(torch.bfloat16), d.y_train, 30)
    p32 = run(m32, factory(m32.parameters()), d.X_train.float(), d.y_train, 30)
    assert all(p.dtype == torch.bfloat16 for p in p16)
    assert zero_fraction(p16) > 0.02
    assert abs(zero_fraction(p16) - zero_fraction(p32)) < 0.25
    for a, b in zip(p16, p32):
        assert float((a.float() - b).abs().max()) < 0.1


@pytest.mark.slow
def test_torch_compile_of_the_model_and_of_the_step():
    d, build, _ = digits_mlp_problem(dtype=torch.float32)
    X, y = d.X_train, d.y_train
    eager = build().float()
    ref = run(eager, ProxAdam(eager.parameters(), lr=3e-3, l1=1e-2), X, y, 10)
    for compile_step in (False, True):
        m = build().float()
        cm = torch.compile(m, backend="aot_eager")
        opt = ProxAdam(m.parameters(), lr=3e-3, l1=1e-2)
        step = torch.compile(opt.step, backend="eager") if compile_step else opt.step
        g = torch.Generator().manual_seed(0)
        for _ in range(10):
            idx = torch.randint(0, X.shape[0], (32,), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(cm(X[idx]), y[idx]).backward()
            step()
        ps = [p.detach() for p in m.parameters()]
        for a, b in zip(ps, ref):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        assert zero_fraction(ps) == pytest.approx(zero_fraction(ref), abs=0.01) and zero_fraction(ps) > 0


# ----------------------------------------------------------------------------- RDA, AC-RDA

def accuracy(model, d) -> float:
    with torch.no_grad():
        return float((model(d.X_val).argmax(1) == d.y_val).double().mean())


def test_rda_trains_a_network_from_its_initialisation_and_centre_zero_does_not():
    d, build, _ = digits_mlp_problem(n=1000)
    accs = {}
    for centre in ("initial", "zero"):
        m = build()
        run(m, RDA(penalised_groups(m, 1e-4), lr=0.5, centre=centre), d.X_train, d.y_train, 300)
        accs[centre] = accuracy(m, d)
    assert accs["initial"] > 0.85 and accs["zero"] < accs["initial"] - 0.3, accs


def test_accelerated_rda_leaves_parameters_without_gradient_in_place():
    used = torch.tensor([1.0, -2.0, 0.05], dtype=torch.float64, requires_grad=True)
    unused = torch.tensor([0.7, -0.01, 3.0], dtype=torch.float64, requires_grad=True)
    start = unused.detach().clone()
    target = torch.tensor([1.0, -2.0, 0.1], dtype=torch.float64)
    opt = AcceleratedRDA([used, unused], lr=0.1, l1=0.5)

    def closure():
        opt.zero_grad()
        loss = (used - target).pow(2).sum()  # minimiser with l1 = 0.5: (0.75, -1.75, 0)
        loss.backward()
        return loss

    for _ in range(40):
        opt.step(closure)
        assert torch.equal(unused.detach(), start)
    assert opt.state[unused]["step"] == 0 and opt.state[used]["step"] == 40
    assert used[2].item() == 0.0 and used.tolist() == pytest.approx([0.75, -1.75, 0.0], abs=1e-3)


# ----------------------------------------------------------------------------- groups helper, bad options

def test_penalised_groups_leave_biases_and_norm_layers_out():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(5),
                          nn.LayerNorm(5))
    model(torch.zeros(1, 3, 6, 6))
    groups = penalised_groups(model, GroupL2Penalty(1e-3), weight_decay=1e-4)
    on, off = (set(map(id, g["params"])) for g in groups)
    assert on == {id(model[0].weight), id(model[4].weight)}
    assert off == {id(p) for p in model.parameters()} - on
    opt = ProxSGD(groups, lr=0.1)
    assert opt.param_groups[0]["group_l2"] == 1e-3 and opt.param_groups[1]["group_l2"] == 0.0
    assert all(g["weight_decay"] == 1e-4 for g in opt.param_groups)
    every = penalised_groups(model, 1e-3, bias=True, norm=True)
    assert len(every) == 1 and every[0]["penalty"] == 1e-3
    assert ProxSGD(every, lr=0.1).param_groups[0]["l1"] == 1e-3


@pytest.mark.parametrize("make,needle", [
    (lambda w: ProxAdam([w], threshold="foo"), "threshold must be one of preconditioned, uniform"),
    (lambda w: ProxSGD([w], momentum=1.5), "momentum must lie in"),
    (lambda w: ProxSGD([w], nesterov=True), "nesterov needs momentum"),
    (lambda w: ProxSGD([w], lr=0.1, group_l2=0.1, group_size=2), "group_size 2 does not divide"),
    (lambda w: ProxSGD([w], lr=0.1, group_l2=0.1, group_dim=3), "out of range"),
    (lambda w: ProxSGD([w], lr=0.1, l1=0.1, penalty=GroupL2Penalty(0.1)), "not both"),
    (lambda w: ProxSGD([{"params": [w], "l1": -1.0}], lr=0.1), "l1 must be a finite number >= 0"),
    (lambda w: ProxSGD([w], lr=0.1, penalty="l1"), "TensorPenalty"),
    (lambda w: RDA([w], centre="middle"), "centre must be"),
    (lambda w: ProxAdam([w], weight_decay=-1.0), "weight_decay must be"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_bad_options_name_the_option(make, needle):
    with pytest.raises(NdgmError, match=needle):
        make(torch.zeros(3, 3, requires_grad=True))


def test_l1_penalty_object_and_number_give_the_same_optimizer():
    w1, w2 = (torch.ones(4, requires_grad=True) for _ in range(2))
    a, b = ProxSGD([w1], lr=0.1, penalty=L1NormPenalty(0.3)), ProxSGD([w2], lr=0.1, l1=0.3)
    assert {k: a.param_groups[0][k] for k in ("l1", "l2", "group_l2")} == \
        {k: b.param_groups[0][k] for k in ("l1", "l2", "group_l2")}
