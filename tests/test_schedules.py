import math

import pytest
import torch

from ndgm.dynamics import Constant, DecayOnIncrease, InvSqrt, StepDecay, make_schedule
from ndgm.errors import NdgmError


def _call(s, t, lr, loss=None, prev=None):
    lr = torch.as_tensor(lr, dtype=torch.float64)
    loss = torch.zeros_like(lr) if loss is None else torch.as_tensor(loss, dtype=torch.float64)
    prev = torch.zeros_like(lr) if prev is None else torch.as_tensor(prev, dtype=torch.float64)
    return s(t, lr, lr, loss, prev)


def test_constant_step_invsqrt():
    assert float(_call(Constant(), 10, 0.3)) == 0.3
    s = StepDecay(step_size=100, gamma=0.5)
    assert [float(_call(s, t, 1.0)) for t in (0, 99, 100, 250)] == [1.0, 1.0, 0.5, 0.25]
    assert float(_call(InvSqrt(), 3, 0.8)) == pytest.approx(0.8 / math.sqrt(4))


def test_decay_on_increase_is_per_configuration():
    s = DecayOnIncrease(0.9)
    out = _call(s, 5, [1.0, 1.0, 1.0], loss=[2.0, 1.0, 0.5], prev=[1.0, 1.0, 1.0])
    assert out.tolist() == [0.9, 1.0, 1.0]


def test_make_schedule_validates():
    assert isinstance(make_schedule("capture"), DecayOnIncrease)
    with pytest.raises(NdgmError, match="unknown schedule"):
        make_schedule("cosine")
    with pytest.raises(NdgmError, match="gamma"):
        make_schedule("step", gamma=-1)
