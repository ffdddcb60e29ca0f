"""sparsity_audit and `ndgm audit PATH`: modules, state dicts, nested checkpoints, safetensors; parameters and
buffers apart and counted alike; user thresholds; dead channels and the compacted size; bad files exit 2."""

import json

import pytest
import torch
from torch import nn

from ndgm.analysis.sparsity import load_weights, sparsity_audit
from ndgm.cli import main
from ndgm.errors import NdgmError
from ndgm.nets import count_parameters
from ndgm.nets.vgg import SmallVGG
from ndgm.sparse import compact

safetensors_torch = pytest.importorskip("safetensors.torch")


def sparse_vgg(seed=0, batch_norm=True):
    torch.manual_seed(seed)
    model = SmallVGG("vgg11", batch_norm=batch_norm, width=0.5)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        convs[0].weight[[1, 3]] = 0
        convs[2].weight[[0, 5, 6]] = 0
        convs[4].weight[:, 2] = 0  # conv 4 reads nothing from conv 3's channel 2
        convs[-1].weight[[7]] = 0
        model.classifier.weight[:, :3] = 0  # the classifier reads nothing of the last conv's channels 0..2
        model.features[0].weight[0, 0, 0, 0] = 0  # a scattered zero
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.num_batches_tracked.fill_(17)
    return model


def test_module_and_its_state_dict_give_the_same_report():
    model = sparse_vgg()
    a, b = sparsity_audit(model).as_dict(), sparsity_audit(model.state_dict()).as_dict()
    assert a == b
    rep = sparsity_audit(model)
    assert rep.total.numel == count_parameters(model)
    assert rep.buffers_total.numel == sum(b.numel() for b in model.buffers())
    assert {r.name.rsplit(".", 1)[-1] for r in rep.buffers} == {"running_mean", "running_var", "num_batches_tracked"}
    convs = {r.name: r for r in rep.layers if r.channels is not None}
    assert convs["features.0.weight"].zero_channels == 2 and convs["features.0.weight"].channels == 8
    assert convs["features.0.weight"].exact_zeros == 2 * 27 + 1
    assert rep.total.zero_channels == 2 + 3 + 1


def test_compacted_size_matches_compact_on_the_module():
    for bn in (True, False):
        model = sparse_vgg(batch_norm=bn)
        small = compact(model)
        est = sparsity_audit(model).compacted
        assert est["parameters"] == count_parameters(small) < est["parameters_before"] == count_parameters(model)
        # bytes of every remaining tensor (compact's folded constants, a few hundred bytes, left out)
        assert est["bytes"] == sum(t.numel() * t.element_size() for k, t in small.state_dict().items()
                                   if "folded" not in k)
    mlp = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        mlp[0].weight[1] = 0
        mlp[2].weight[:, 3] = 0
        mlp[4].weight[1] = 0  # the last layer's outputs stay
    assert sparsity_audit(mlp).compacted["parameters"] == count_parameters(compact(mlp))


def write_all_kinds(tmp_path, model):
    sd = model.state_dict()
    paths = {"state dict": tmp_path / "sd.pt", "nested": tmp_path / "ck.pt", "deep": tmp_path / "deep.ckpt",
             "safetensors": tmp_path / "model.safetensors", "sniffed": tmp_path / "model.bin"}
    torch.save(sd, paths["state dict"])
    opt = torch.optim.Adam(model.parameters())
    torch.save({"epoch": 3, "model": sd, "optimizer": opt.state_dict(), "history": {"loss": [1.0, 0.5]}},
               paths["nested"])
    torch.save({"trainer": {"state_dict": sd}, "rng": torch.get_rng_state()}, paths["deep"])
    safetensors_torch.save_file({k: v.contiguous() for k, v in sd.items()}, str(paths["safetensors"]))
    safetensors_torch.save_file({k: v.contiguous() for k, v in sd.items()}, str(paths["sniffed"]))
    return paths


def test_every_file_kind_gives_the_modules_report(tmp_path):
    model = sparse_vgg()
    ref = sparsity_audit(model, thresholds=(1e-6, 0.01)).as_dict()
    for kind, path in write_all_kinds(tmp_path, model).items():
        got = sparsity_audit(path, thresholds=(1e-6, 0.01)).as_dict()
        assert sparsity_audit(str(path), thresholds=(1e-6, 0.01)).as_dict() == got
        if kind in ("safetensors", "sniffed"):
            # a safetensors file keeps no module order: the same rows, listed by name (numbers as numbers)
            for key in ("layers", "buffers"):
                assert sorted(got[key], key=lambda r: r["name"]) == sorted(ref[key], key=lambda r: r["name"])
            assert [r["name"] for r in got["layers"]][:3] == ["classifier.weight", "classifier.bias",
                                                               "features.0.weight"]
            for key in ("total", "buffers_total", "compacted", "thresholds"):
                assert got[key] == ref[key], (kind, key)
        else:
            assert got == ref, kind
    # a nested checkpoint given as a dict
    assert sparsity_audit({"model": model.state_dict(), "optimizer": {}}, (1e-6, 0.01)).as_dict() == ref


def test_user_thresholds():
    w = torch.tensor([0.0, 1e-7, 1e-4, 0.2, -0.5], dtype=torch.float64)
    rep = sparsity_audit({"w": w}, thresholds=[1e-6, 0.3, 1.0])
    assert rep.thresholds == (1e-6, 0.3, 1.0) and rep.total.below == {1e-6: 0.4, 0.3: 0.8, 1.0: 1.0}
    assert "< 0.3" in rep.table()
    for bad in ([], [0.0], ["x"], [float("nan")]):
        with pytest.raises(NdgmError, match="threshold"):
            sparsity_audit({"w": w}, thresholds=bad)


def test_cli_audit_text_and_json(tmp_path, capsys):
    model = sparse_vgg()
    paths = write_all_kinds(tmp_path, model)
    for path in paths.values():
        assert main(["audit", str(path), "--json", "--threshold", "1e-6", "--threshold", "0.01"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["thresholds"] == [1e-6, 0.01] and out["total"]["numel"] == count_parameters(model)
        assert out["compacted"]["parameters"] == count_parameters(compact(model))
        assert out["buffers_total"]["numel"] == sum(b.numel() for b in model.buffers())
    assert main(["audit", str(paths["nested"])]) == 0
    text = capsys.readouterr().out
    assert "features.0.weight" in text and "2 / 8" in text and "buffers:" in text and "compacted" in text
    rep = sparsity_audit(model)
    assert text.splitlines()[0].endswith(f"{rep.total.zero_channels} of {rep.total.channels} output channels "
                                         "entirely zero") and rep.total.zero_channels == 6


class Whole(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)


def bad_files(tmp_path):
    (tmp_path / "dir.pt").mkdir()
    (tmp_path / "garbage.pt").write_bytes(b"\x00\x01not a checkpoint at all" * 10)
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(3)}, good)
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:200])
    torch.save(Whole(), tmp_path / "whole.pt")
    torch.save({"epoch": 3, "note": "no tensors"}, tmp_path / "notensors.pt")
    torch.save({"a": {"w": torch.ones(2)}, "b": {"w": torch.ones(2)}}, tmp_path / "two.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    st = tmp_path / "broken.safetensors"
    safetensors_torch.save_file({"w": torch.ones(4)}, str(st))
    st.write_bytes(st.read_bytes()[:-8])
    return [
        (["missing.pt"], "no such file"),
        (["dir.pt"], "not a file"),
        (["garbage.pt"], "not a readable torch checkpoint"),
        (["truncated.pt"], "not a readable torch checkpoint"),
        (["whole.pt"], "only state dicts and checkpoints of tensors are read"),
        (["notensors.pt"], "no state dict"),
        (["two.pt"], "several state dicts"),
        (["list.pt"], "holds a list"),
        (["broken.safetensors"], "not a readable safetensors file"),
        (["good.pt", "--threshold", "abc"], "threshold must be a number"),
        (["good.pt", "--threshold", "-1"], "threshold must be a finite number > 0"),
    ]


def test_bad_files_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, monkeypatch):
    cases = bad_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, needle in cases:
        rc = main(["audit", *argv])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("ndgm: error: ") and err.count("\n") == 1, (argv, err)
        assert needle in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_load_weights_is_the_library_entry_point(tmp_path):
    model = sparse_vgg()
    path = tmp_path / "ck.pt"
    torch.save({"model": model.state_dict(), "optimizer": {"state": {}, "param_groups": []}}, path)
    sd = load_weights(path)
    assert list(sd) == list(model.state_dict()) and all(torch.equal(sd[k], v) for k, v in model.state_dict().items())
    with pytest.raises(NdgmError, match="no such file"):
        load_weights(tmp_path / "nope.pt")
