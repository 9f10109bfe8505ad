import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def demos():
    from polydiff.robotics.data import collect_demos

    return collect_demos("obstacle", 12, seed=0)
