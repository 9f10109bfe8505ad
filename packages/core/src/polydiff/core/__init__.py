"""polydiff.core: noise schedules, Gaussian and discrete diffusion, fast solvers, guidance and training."""

from .denoiser import Denoiser, Prediction, convert_prediction, to_x0_eps
from .diffusers_interop import SolverScheduler, from_diffusers
from .grids import GRIDS, make_grid
from .sampling import list_solvers, register_solver, sample
from .schedules import (
    DiscreteSchedule,
    EDMSchedule,
    FlowSchedule,
    NoiseSchedule,
    VESchedule,
    VPCosineSchedule,
    VPLinearSchedule,
)

__version__ = "0.1.0"

__all__ = [
    "Denoiser", "Prediction", "convert_prediction", "to_x0_eps", "from_diffusers", "SolverScheduler", "GRIDS", "make_grid", "register_solver",
    "sample", "list_solvers", "DiscreteSchedule", "EDMSchedule", "FlowSchedule", "NoiseSchedule", "VESchedule",
    "VPCosineSchedule", "VPLinearSchedule", "__version__",
]
