"""polydiff.tabular: diffusion models for mixed-type tables with one API — TabDDPM (Kotelnikov et al., 2023),
TabSyn (Zhang et al., 2024) and TabDiff (Shi et al., 2025) — with evaluation, peers and a bench.

    from polydiff.tabular import TabDDPM          # or TabSyn, TabDiff
    model = TabDDPM().fit(df, target="y")
    synthetic = model.sample(1000, seed=0)
"""

from .data import DATASETS, TableTask, load_dataset, read_table, split, write_table
from .evaluate import Evaluation, evaluate
from .transform import TableTransformer

__all__ = ["TabDDPM", "TabDDPMConfig", "TabSyn", "TabSynConfig", "TabDiff", "TabDiffConfig", "TableTransformer", "evaluate", "Evaluation", "load_dataset", "read_table",
           "write_table", "split", "TableTask", "DATASETS"]


def __getattr__(name):  # the model pulls in torch; import it on first use
    if name in ("TabDDPM", "TabDDPMConfig"):
        from . import model

        return getattr(model, name)
    if name in ("TabSyn", "TabSynConfig"):
        from . import tabsyn

        return getattr(tabsyn, name)
    if name in ("TabDiff", "TabDiffConfig"):
        from . import tabdiff

        return getattr(tabdiff, name)
    raise AttributeError(name)
