import copy

import numpy as np
import pytest
import torch
from torch import nn

from ndgm.data.images import (CIFAR10_MEAN, CIFAR10_STD, augment, load_cifar10, load_digits_images,
                              load_images, write_cifar_batch)
from ndgm.errors import NdgmError
from ndgm.experiments.activations import epochs_to_target
from ndgm.nets.vgg import SmallVGG
from ndgm.analysis.sparsity import exact_zero_fraction, small_fraction
from ndgm.training import ModelStack, l1_norm, make_optimizer, seeded, train, train_stack


# Small convolutions on a shared 2-core machine: extra OpenMP threads only spin (10x slower).
pytestmark = pytest.mark.usefixtures("one_thread")


def make_cifar_dir(root, n_per_batch=4, n_test=3, seed=0):
    rs = np.random.RandomState(seed)
    root.mkdir(parents=True, exist_ok=True)
    batches = []
    for i in range(1, 6):
        data = rs.randint(0, 256, size=(n_per_batch, 3072)).astype(np.uint8)
        labels = rs.randint(0, 10, size=n_per_batch)
        write_cifar_batch(root / f"data_batch_{i}", data, labels)
        batches.append((data, labels))
    data = rs.randint(0, 256, size=(n_test, 3072)).astype(np.uint8)
    labels = rs.randint(0, 10, size=n_test)
    write_cifar_batch(root / "test_batch", data, labels)
    return batches, (data, labels)


def test_cifar_reader_on_generated_files(tmp_path):
    batches, (tdata, tlabels) = make_cifar_dir(tmp_path / "c")
    d = load_cifar10(tmp_path / "c")
    assert d.train_x.shape == (20, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.val_x.shape == (3, 3, 32, 32)
    assert d.train_y.tolist() == [int(v) for _, lab in batches for v in lab]
    assert d.val_y.tolist() == tlabels.tolist()
    # row layout: 1024 red, then 1024 green, then 1024 blue values, each 32 rows of 32
    data = batches[1][0]
    assert int(d.train_x[4 + 2, 1, 5, 7]) == int(data[2, 1024 + 5 * 32 + 7])
    assert int(d.train_x[4 + 2, 2, 31, 0]) == int(data[2, 2048 + 31 * 32])
    x, y = d.batch(torch.tensor([6]), augment_with=None)
    ref = (torch.tensor(data[2].reshape(3, 32, 32), dtype=torch.float32) / 255
           - torch.tensor(CIFAR10_MEAN).view(3, 1, 1)) / torch.tensor(CIFAR10_STD).view(3, 1, 1)
    assert torch.allclose(x[0], ref, atol=1e-6) and y.tolist() == [int(batches[1][1][2])]
    half = load_images(str(tmp_path / "c"), "half")
    assert half.mean == (0.5, 0.5, 0.5) and half.std == (0.5, 0.5, 0.5)


def test_cifar_reader_errors(tmp_path):
    with pytest.raises(NdgmError, match="not a directory.*expected the CIFAR-10 python folder"):
        load_cifar10(tmp_path / "nope")
    make_cifar_dir(tmp_path / "c")
    (tmp_path / "c" / "data_batch_3").unlink()
    with pytest.raises(NdgmError, match="lacks data_batch_3"):
        load_cifar10(tmp_path / "c")
    (tmp_path / "c" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(NdgmError, match="not a CIFAR-10 python batch.*expected a pickled dict"):
        load_cifar10(tmp_path / "c")
    write_cifar_batch(tmp_path / "c" / "data_batch_3", np.zeros((2, 3072), np.uint8), [1, 2])
    import pickle

    with open(tmp_path / "c" / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}, f)
    with pytest.raises(NdgmError, match=r"shape \[2, 100\].*N x 3072"):
        load_cifar10(tmp_path / "c")
    with open(tmp_path / "c" / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 12]}, f)
    with pytest.raises(NdgmError, match="labels"):
        load_cifar10(tmp_path / "c")


def test_digits_images():
    d = load_digits_images()
    assert (d.n_train, d.n_val) == (1437, 360) and d.train_x.shape[1:] == (3, 32, 32)
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = d.train_x
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    small = x[:, 0, ::4, ::4]  # every 4x4 block is one original pixel
    assert torch.equal(x[:, 0], small.repeat_interleave(4, 1).repeat_interleave(4, 2))
    assert int(x.max()) <= 16
    # each small image is one of sklearn's, with its label; the split is stratified and fixed
    originals = {tuple(im.astype(int).ravel()): t for im, t in zip(raw.images, raw.target)}
    assert all(originals[tuple(small[i].int().ravel().tolist())] == int(d.train_y[i]) for i in range(0, 1437, 97))
    counts = np.bincount(d.val_y.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    assert torch.equal(load_digits_images().train_y, d.train_y)
    xb, _ = d.batch(slice(0, 1437))
    assert abs(float(xb.mean())) < 1e-4 and abs(float(xb.std()) - 1) < 1e-3


def test_augment_is_a_seeded_padded_crop_and_flip():
    x = torch.rand(16, 3, 32, 32)
    a = augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, augment(x, torch.Generator().manual_seed(4)))
    # reference: replay the same draws one image at a time
    g = torch.Generator().manual_seed(3)
    offs = torch.randint(0, 9, (16, 2), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(16):
        r, c = offs[i].tolist()
        crop = padded[i, :, r:r + 32, c:c + 32]
        if flip[i]:
            crop = crop.flip(-1)
        assert torch.equal(a[i], crop)
    assert 0 < int(flip.sum()) < 16
    a0 = augment(x, torch.Generator().manual_seed(0), padding=0)  # no padding: identity or a mirror
    assert all(torch.equal(a0[i], x[i]) or torch.equal(a0[i], x[i].flip(-1)) for i in range(16))


def tiny_data(n=48, n_val=16):
    return load_digits_images().subset(n, n_val)


def small_model(seed, dropout=True):
    def build():
        layers = [nn.Dropout(0.1)] if dropout else []
        return nn.Sequential(*layers, SmallVGG("vgg11", "relu"))
    return seeded(seed, build)


def test_same_seed_same_bits_and_other_seed_differs():
    data = tiny_data()
    runs = []
    for seed in (5, 5, 6):
        m = small_model(seed)
        h = train(m, data, torch.optim.Adam(m.parameters(), 1e-3), epochs=2, batch_size=16, seed=seed)
        runs.append((h, torch.cat([p.detach().flatten() for p in m.parameters()])))
    (h1, p1), (h2, p2), (h3, p3) = runs
    assert h1.train_loss == h2.train_loss and h1.val_loss == h2.val_loss and torch.equal(p1, p2)
    assert h1.train_loss != h3.train_loss
    assert len(h1.train_loss) == 2 and all(np.isfinite(h1.train_loss)) and len(h1.l1) == 2


def test_training_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    m = small_model(0)
    train(m, tiny_data(16, 8), torch.optim.SGD(m.parameters(), 0.01), epochs=1, batch_size=8, seed=0)
    assert torch.equal(torch.get_rng_state(), before)


class Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    data = tiny_data()
    kw = dict(epochs=3, batch_size=16, seed=7, l1=1e-3)
    m = small_model(7)
    full = train(m, data, torch.optim.Adam(m.parameters(), 1e-3), checkpoint=tmp_path / "a.pt", **kw)
    full_params = copy.deepcopy(m.state_dict())

    def stop(epoch, batch):
        if epoch == 1 and batch == 1:
            raise Interrupt

    m = small_model(7)
    with pytest.raises(Interrupt):
        train(m, data, torch.optim.Adam(m.parameters(), 1e-3), checkpoint=tmp_path / "b.pt", on_batch=stop, **kw)
    ck = torch.load(tmp_path / "b.pt", weights_only=False)
    assert ck["epoch"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # a fresh process would build a fresh model and optimizer, then resume
    m = small_model(99)
    resumed = train(m, data, torch.optim.Adam(m.parameters(), 1e-3), checkpoint=tmp_path / "b.pt", resume=True, **kw)
    assert resumed.train_loss == full.train_loss and resumed.val_loss == full.val_loss and resumed.l1 == full.l1
    assert all(torch.equal(full_params[k], v) for k, v in m.state_dict().items())
    # resuming a finished run trains nothing and returns the same history
    again = train(m, data, torch.optim.Adam(m.parameters(), 1e-3), checkpoint=tmp_path / "b.pt", resume=True, **kw)
    assert again.train_loss == full.train_loss
    with pytest.raises(NdgmError, match="different run.*seed"):
        train(m, data, torch.optim.Adam(m.parameters(), 1e-3), checkpoint=tmp_path / "b.pt", resume=True,
              **(kw | {"seed": 8}))


def test_full_batch_sgd_step_matches_a_hand_written_step():
    data = tiny_data(24, 8)
    lam, lr = 0.01, 0.05
    m = small_model(1, dropout=False)
    ref = copy.deepcopy(m)
    h = train(m, data, torch.optim.SGD(m.parameters(), lr), epochs=1, batch_size=0, seed=1, l1=lam,
              shuffle=False, augment=False)
    x, y = data.batch(slice(0, 24))
    loss = nn.functional.cross_entropy(ref(x), y) + lam * sum(p.abs().sum() for p in ref.parameters())
    loss.backward()
    with torch.no_grad():
        for p in ref.parameters():
            p -= lr * p.grad
    assert h.train_loss == [float(loss.detach())]
    for a, b in zip(m.parameters(), ref.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-7)


def test_fractions_on_a_known_model():
    m = nn.Linear(4, 2)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[0.0, 1e-6, -2e-6, 1.0], [-0.0, 3e-5, 0.0, 1e-5]]))
        m.bias.copy_(torch.tensor([0.0, 5.0]))
    assert exact_zero_fraction(m) == 4 / 10
    assert small_fraction(m, 1e-5) == 6 / 10  # |t| < 1e-5: 0, 1e-6, -2e-6, -0, 0, bias 0
    assert float(l1_norm(m).detach()) == pytest.approx(6.0 + 3e-6 + 4e-5)


@pytest.mark.parametrize("name", ["prox-sgd", "prox-adam"])
def test_proximal_optimizers_give_exact_zeros_where_ndgm_does_not(name):
    data = tiny_data(32, 8)
    lam = 2.0
    zeros = {}
    for opt_name in (name, "sgd" if name == "prox-sgd" else "adam"):
        m = small_model(0, dropout=False)
        opt = make_optimizer(opt_name, m.parameters(), 0.003, l1=lam)
        h = train(m, data, opt, epochs=1, batch_size=16, seed=0, l1=lam, augment=False)  # penalty from the optimizer
        zeros[opt_name] = exact_zero_fraction(m)
        assert np.isfinite(h.train_loss).all()
    # two steps, each zeroing every coordinate with |w - eta g| <= eta * lam = 0.006 (ProxSGD) or
    # eta * lam / D with D ~ |g| (ProxAdam): a large share of the ~U(-0.04, 0.04) conv weights
    assert zeros[name] > 0.2
    assert zeros["sgd" if name == "prox-sgd" else "adam"] < 1e-3  # NDGM lands on 0.0 only by accident


def test_penalty_defaults_to_what_the_optimizer_does():
    # a proximal optimizer applies L1 in its step: by default the loss only reports it
    data = tiny_data(8, 4)
    for name, implied, other in (("prox-sgd", "report", "autograd"), ("sgd", "autograd", "report")):
        runs = {}
        for penalty in (None, implied, other):
            m = small_model(0, dropout=False)
            h = train(m, data, make_optimizer(name, m.parameters(), 0.003, l1=0.5), epochs=1, batch_size=4, seed=0,
                      l1=0.5, penalty=penalty, augment=False)
            runs[penalty] = (h.train_loss, torch.cat([p.detach().flatten() for p in m.parameters()]))
        assert runs[None][0] == runs[implied][0] and torch.equal(runs[None][1], runs[implied][1])
        assert not torch.equal(runs[None][1], runs[other][1])


def test_unknown_optimizer_and_penalty():
    m = small_model(0, dropout=False)
    with pytest.raises(NdgmError, match="unknown optimizer 'lbfgs'"):
        make_optimizer("lbfgs", m.parameters(), 0.1)
    with pytest.raises(NdgmError, match="penalty must be"):
        train(m, tiny_data(8, 4), torch.optim.SGD(m.parameters(), 0.1), epochs=1, batch_size=4, seed=0, penalty="x")


def test_epochs_to_target():
    assert epochs_to_target(np.array([2.0, 1.5, 1.0]), 1.25) == 2.5
    assert epochs_to_target(np.array([2.0, 1.5, 1.0]), 2.5) == 1.0
    assert epochs_to_target(np.array([2.0, 1.5, 1.0]), 0.5) == 4.0
    assert epochs_to_target(np.array([2.0, 1.0, 1.2, 0.5]), 1.0) == 2.0


# ---------------------------------------------------------------- seeds as a batch dimension


@pytest.mark.parametrize("bn", [False, True])
def test_a_stack_trains_each_model_as_its_own_run(bn):
    """K seeds in one stack = K runs of `train`, to rounding (float64), BatchNorm's statistics included."""
    data = tiny_data(40, 16)
    seeds, lams = [3, 4, 5], [0.0, 1e-3, 0.0]

    def build(s):
        return seeded(s, lambda: SmallVGG("vgg11", "gelu", bn)).double()

    stack = ModelStack([build(s) for s in seeds])
    hists = train_stack(stack, data, torch.optim.Adam(stack.parameters(), 1e-3), epochs=2, batch_size=16, seeds=seeds,
                        l1=lams, dtype=torch.float64)
    models = stack.write_back()
    for k, s in enumerate(seeds):
        m = build(s)
        h = train(m, data, torch.optim.Adam(m.parameters(), 1e-3), epochs=2, batch_size=16, seed=s, l1=lams[k],
                  dtype=torch.float64)
        for key in ("train_loss", "train_ce", "val_loss", "val_acc", "l1"):
            assert getattr(hists[k], key) == pytest.approx(getattr(h, key), rel=1e-9, abs=1e-12), key
        for (name, a), b in zip(models[k].state_dict().items(), m.state_dict().values()):
            assert torch.allclose(a.double(), b.double(), rtol=1e-7, atol=1e-9), name
    assert hists[0].l1 != hists[1].l1  # another seed, another run


def test_a_stack_refuses_dropout_mixed_architectures_and_mismatched_seeds():
    with pytest.raises(NdgmError, match="Dropout"):
        ModelStack([small_model(0), small_model(1)])
    with pytest.raises(NdgmError, match="share one architecture"):
        ModelStack([SmallVGG("vgg11"), SmallVGG("vgg13")])
    stack = ModelStack([SmallVGG("vgg11"), SmallVGG("vgg11")])
    opt = torch.optim.SGD(stack.parameters(), 0.1)
    with pytest.raises(NdgmError, match="one seed per model: 2 models, 1 seeds"):
        train_stack(stack, tiny_data(8, 4), opt, epochs=1, batch_size=4, seeds=[0])
    prox = make_optimizer("prox-sgd", stack.parameters(), 0.1, l1=0.5)
    with pytest.raises(NdgmError, match="one l1 for all its models"):
        train_stack(stack, tiny_data(8, 4), prox, epochs=1, batch_size=4, seeds=[0, 1], l1=[0.5, 0.1])


def test_stack_resume_after_interruption_equals_uninterrupted(tmp_path):
    data = tiny_data(32, 8)
    seeds = [1, 2]
    kw = dict(epochs=3, batch_size=16, seeds=seeds, l1=1e-3)

    def fresh():
        stack = ModelStack([seeded(s, lambda: SmallVGG("vgg11", "relu", True)) for s in seeds])
        return stack, torch.optim.Adam(stack.parameters(), 1e-3)

    stack, opt = fresh()
    full = train_stack(stack, data, opt, checkpoint=tmp_path / "a.pt", **kw)
    full_state = stack.state_dict()

    def stop(epoch, batch):
        if epoch == 1 and batch == 1:
            raise Interrupt

    stack, opt = fresh()
    with pytest.raises(Interrupt):
        train_stack(stack, data, opt, checkpoint=tmp_path / "b.pt", on_batch=stop, **kw)
    stack, opt = fresh()
    resumed = train_stack(stack, data, opt, checkpoint=tmp_path / "b.pt", resume=True, **kw)
    assert [h.train_loss for h in resumed] == [h.train_loss for h in full]
    assert all(torch.equal(full_state["params"][k], v) for k, v in stack.state_dict()["params"].items())
    assert all(torch.equal(full_state["buffers"][k], v) for k, v in stack.state_dict()["buffers"].items())
    with pytest.raises(NdgmError, match="different run.*seeds"):
        train_stack(stack, data, opt, checkpoint=tmp_path / "b.pt", resume=True, **(kw | {"seeds": [1, 3]}))


def test_image_mlp_on_subsampled_digits_sees_the_8x8_pixels():
    from ndgm.nets.mlp import ImageMLP

    d = load_digits_images()
    small = d.subsample(4)
    assert small.image_shape == (3, 8, 8) and torch.equal(small.train_x, d.train_x[:, :, ::4, ::4])
    from sklearn.datasets import load_digits

    assert {tuple(small.train_x[0, 0].flatten().tolist())} <= {tuple(im.astype(int).ravel()) for im in
                                                                load_digits().images}
    m = ImageMLP(small.image_shape, (32, 16), 10, pool=1)
    assert [type(x).__name__ for x in m] == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert m[1].in_features == 192 and m(small.batch(slice(0, 5))[0]).shape == (5, 10)
    assert ImageMLP((3, 32, 32), (8,), 10, pool=4)[2].in_features == 192
    with pytest.raises(NdgmError, match="pool 3 must divide"):
        ImageMLP((3, 32, 32), (8,), 10, pool=3)
