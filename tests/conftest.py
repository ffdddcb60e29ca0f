import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for modules of tiny problems (OpenMP spinning on a loaded CPU costs 10x+)."""
    from ndgm.device import torch_threads

    with torch_threads(1):
        yield
