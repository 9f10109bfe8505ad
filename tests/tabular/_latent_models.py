"""Shared checks of TabSyn and TabDiff (imported by test_tabsyn.py and test_tabdiff.py)."""

import numpy as np
import pandas as pd


def dependent_frame(n=400, seed=0):
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


def joint_quality(synthetic: pd.DataFrame) -> tuple[float, float]:
    """(correlation of a and b, share of rows where label agrees with the sign of a)."""
    return (float(np.corrcoef(synthetic.a, synthetic.b)[0, 1]),
            float(((synthetic.a > 0) == (synthetic.label == "hi")).mean()))
