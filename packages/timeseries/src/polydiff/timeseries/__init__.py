"""polydiff.timeseries: diffusion forecasters (CSDI, TSDiff, Diffusion-TS) on statsforecast's long frames.

    from polydiff.timeseries import DiffusionForecaster, load_dataset
    fc = DiffusionForecaster(h=12, freq="MS").fit(load_dataset("airline"))
    fc.predict(level=[80, 95])
"""

from .data import DATASETS, load_dataset, make_sines, read_frame, wide_to_long, write_frame
from .model import MODELS, DiffusionForecaster, ForecasterConfig

__version__ = "0.1.0"

__all__ = ["DiffusionForecaster", "ForecasterConfig", "MODELS", "DATASETS", "load_dataset", "make_sines",
           "read_frame", "write_frame", "wide_to_long", "__version__"]
