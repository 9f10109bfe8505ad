"""polydiff's training engine: one loop for every domain package (see docs/training.md)."""

from .checkpoint import CheckpointError
from .config import TrainConfig
from .distributed import ResumableDistributedSampler
from .ema import EMA, ema_decay
from .trainer import Callback, Trainer, lr_factor

__all__ = ["Trainer", "TrainConfig", "Callback", "EMA", "ema_decay", "lr_factor", "ResumableDistributedSampler",
           "CheckpointError"]
