"""Fixtures shared by the TabSyn and TabDiff tests: a table with a known joint law, a score of how well a
synthetic table keeps it, tiny budgets, and one fitted model of each, fitted once per test session."""

import numpy as np
import pandas as pd
import pytest

# tiny budgets that still learn the joint law of ``dependent_frame`` (test_latent_models.py checks that they do)
TINY = {
    "TabSyn": dict(vae_steps=150, steps=200, hidden=(64, 64), batch_size=256, vae_batch_size=256, sample_steps=10),
    "TabDiff": dict(steps=300, hidden=(64, 64), batch_size=256, sample_steps=20),
}


def _dependent_frame(n=400, seed=0):
    """``label`` is 'hi' exactly when a > 0 and b = 2a + small noise: a model that learns nothing of the joint law
    gets agreement near 0.5 and correlation near 0."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return pd.DataFrame({
        "a": a,
        "b": 2 * a + 0.1 * rng.normal(size=n),
        "label": pd.Categorical(np.where(a > 0, "hi", "lo")),
        "k": rng.integers(0, 3, n),
        "city": rng.choice(["Oslo", "Rome"], n).astype(object),
    })


def _joint_quality(synthetic: pd.DataFrame) -> tuple[float, float]:
    """(correlation of a and b, share of rows where label agrees with the sign of a)."""
    return (float(np.corrcoef(synthetic.a, synthetic.b)[0, 1]),
            float(((synthetic.a > 0) == (synthetic.label == "hi")).mean()))


@pytest.fixture(scope="session")
def dependent_frame():
    """``dependent_frame(n=400, seed=0)``: the table with a known joint law (a, b, label, k, city)."""
    return _dependent_frame


@pytest.fixture(scope="session")
def joint_quality():
    """``joint_quality(synthetic) -> (correlation of a and b, agreement of label with the sign of a)``."""
    return _joint_quality


def _model_class(name: str):
    if name == "TabSyn":
        from polydiff.tabular.tabsyn import TabSyn

        return TabSyn
    from polydiff.tabular.tabdiff import TabDiff

    return TabDiff


def _fit(name: str):
    df = _dependent_frame()
    return _model_class(name)(**TINY[name]).fit(df, target="label"), df


@pytest.fixture(scope="session")
def fitted_tabsyn():
    """(TabSyn fitted on ``dependent_frame()`` with ``TINY["TabSyn"]``, that frame)."""
    return _fit("TabSyn")


@pytest.fixture(scope="session")
def fitted_tabdiff():
    """(TabDiff fitted on ``dependent_frame()`` with ``TINY["TabDiff"]``, that frame)."""
    return _fit("TabDiff")


@pytest.fixture(params=["TabSyn", "TabDiff"])
def latent_model(request):
    """Each of TabSyn and TabDiff in turn: (class, its tiny budget)."""
    return _model_class(request.param), TINY[request.param]


@pytest.fixture
def fitted_latent_model(latent_model, request):
    """(fitted model, frame) of the class ``latent_model`` stands for: ``fitted_tabsyn`` or ``fitted_tabdiff``."""
    return request.getfixturevalue(f"fitted_{latent_model[0].__name__.lower()}")
