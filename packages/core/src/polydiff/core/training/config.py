"""TrainConfig: every knob of the training engine, validated when it is built."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

__all__ = ["TrainConfig", "LR_SCHEDULES", "MIXED_PRECISION", "NONFINITE", "RESUME_FREE_FIELDS", "resume_changes"]

LR_SCHEDULES = ("cosine", "linear", "constant")
MIXED_PRECISION = ("no", "bf16", "fp16")
NONFINITE = ("raise", "skip")

# Fields a resumed run may change without asking. ``steps`` says when the run ends (the LR schedule follows the new
# value); the others say how a run is watched, stored and placed, never which update a finished step makes
# (``nonfinite`` only decides whether a NaN step stops the run or is skipped). ``batch_size`` and ``grad_accum`` are
# judged through the global batch ``batch_size x world_size x grad_accum``: scaling ``batch_size`` to a new number
# of ranks continues the same optimisation. Every other field changes the training itself and is refused unless
# the Trainer is given ``resume_overrides``.
RESUME_FREE_FIELDS = ("steps", "log_every", "eval_every", "checkpoint_dir", "checkpoint_every", "keep_last",
                      "progress", "device", "num_workers", "find_unused_parameters", "nonfinite")
_BATCH_FIELDS = ("batch_size", "grad_accum")


def _bad(name: str, value, allowed: str) -> ValueError:
    return ValueError(f"TrainConfig.{name}: got {value!r}; expected {allowed}")


@dataclass(frozen=True)
class TrainConfig:
    """Configuration of :class:`polydiff.core.training.Trainer`.

    Batch sizes: ``batch_size`` is **per rank and per micro-batch**. One optimizer step consumes the global batch
    ``batch_size * world_size * grad_accum`` samples, and the loss gradient is the mean over that global batch,
    so 2 ranks x batch 32 trains exactly like 1 rank x batch 64 (or 1 rank x batch 32 x grad_accum 2).

    steps: number of optimizer steps to train for (a resumed run stops at the same step).
    lr, weight_decay, betas: AdamW (Loshchilov & Hutter, 2019).
    warmup_steps: linear LR warm-up from 0; then ``lr_schedule`` decays to 0 at ``steps`` ("cosine", "linear")
        or stays at ``lr`` ("constant").
    grad_clip: max global L2 norm of the gradient, or None for no clipping.
    ema_decay: maximum EMA decay, or None for no EMA. The decay after k optimizer steps past ``ema_warmup`` is
        ``1 - (1 + k / ema_inv_gamma) ** -ema_power`` clipped to ``[ema_min_decay, ema_decay]`` (the schedule of
        diffusion_policy's EMAModel, after @crowsonkb); during the first ``ema_warmup`` steps the EMA copies the
        model. ``ema_min_decay = ema_decay`` gives a constant decay.
    mixed_precision: "bf16" autocasts on CPU and CUDA; "fp16" autocasts with a GradScaler and needs CUDA.
    log_every: optimizer steps between lines of ``checkpoint_dir/metrics.jsonl`` (and TensorBoard when installed).
    eval_every: steps between calls of ``eval_fn`` (None: never).
    checkpoint_dir: folder for checkpoints and metrics; None keeps nothing on disk (and cannot resume).
    checkpoint_every: steps between checkpoints (a checkpoint is always written at the last step).
    keep_last: checkpoints kept on disk (older ones are deleted after a new one is complete).
    nonfinite: what a NaN/inf loss or gradient does: "raise" stops with a RuntimeError naming the step and the
        tensor; "skip" leaves the weights untouched for that step and counts it in ``Trainer.skipped_steps``.
    device: "cpu", "cuda", "cuda:1"... or None for CUDA when available (under DDP: cuda:LOCAL_RANK).
    num_workers: DataLoader worker processes.
    find_unused_parameters: passed to DistributedDataParallel, for models whose forward skips parameters.

    The config is stored in every checkpoint. A run that resumes one may change :data:`RESUME_FREE_FIELDS`
    (``steps`` and the logging, checkpointing and placement fields) and ``batch_size`` / ``grad_accum`` at the
    same global batch; any other change is refused unless the Trainer's ``resume_overrides`` accepts it.
    """

    steps: int
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    grad_clip: float | None = 1.0
    grad_accum: int = 1
    ema_decay: float | None = 0.9999
    ema_power: float = 2 / 3
    ema_inv_gamma: float = 1.0
    ema_min_decay: float = 0.0
    ema_warmup: int = 0
    mixed_precision: str = "no"
    log_every: int = 50
    eval_every: int | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1000
    keep_last: int = 3
    seed: int = 0
    progress: bool = False
    device: str | None = None
    nonfinite: str = "raise"
    num_workers: int = 0
    find_unused_parameters: bool = False

    def __post_init__(self):
        def positive_int(name, value, minimum=1):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise _bad(name, value, f"an int >= {minimum}")

        positive_int("steps", self.steps)
        positive_int("batch_size", self.batch_size)
        positive_int("grad_accum", self.grad_accum)
        positive_int("warmup_steps", self.warmup_steps, 0)
        positive_int("ema_warmup", self.ema_warmup, 0)
        positive_int("log_every", self.log_every)
        positive_int("checkpoint_every", self.checkpoint_every)
        positive_int("keep_last", self.keep_last)
        positive_int("num_workers", self.num_workers, 0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise _bad("seed", self.seed, "an int in [0, 2**63)")
        if self.eval_every is not None:
            positive_int("eval_every", self.eval_every)
        if not _finite(self.lr) or self.lr <= 0:
            raise _bad("lr", self.lr, "a finite float > 0")
        if not _finite(self.weight_decay) or self.weight_decay < 0:
            raise _bad("weight_decay", self.weight_decay, "a finite float >= 0")
        if not _finite(self.eps) or self.eps <= 0:
            raise _bad("eps", self.eps, "a finite float > 0")
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else self.betas
        if not (isinstance(betas, tuple) and len(betas) == 2 and all(_finite(b) and 0 <= b < 1 for b in betas)):
            raise _bad("betas", self.betas, "two floats in [0, 1)")
        object.__setattr__(self, "betas", tuple(float(b) for b in betas))
        if self.lr_schedule not in LR_SCHEDULES:
            raise _bad("lr_schedule", self.lr_schedule, f"one of {LR_SCHEDULES}")
        if self.grad_clip is not None and (not _finite(self.grad_clip) or self.grad_clip <= 0):
            raise _bad("grad_clip", self.grad_clip, "None or a finite float > 0")
        if self.ema_decay is not None and (not _finite(self.ema_decay) or not 0 <= self.ema_decay < 1):
            raise _bad("ema_decay", self.ema_decay, "None or a float in [0, 1)")
        if not _finite(self.ema_power) or self.ema_power <= 0:
            raise _bad("ema_power", self.ema_power, "a finite float > 0")
        if not _finite(self.ema_inv_gamma) or self.ema_inv_gamma <= 0:
            raise _bad("ema_inv_gamma", self.ema_inv_gamma, "a finite float > 0")
        top = 1.0 if self.ema_decay is None else self.ema_decay
        if not _finite(self.ema_min_decay) or not 0 <= self.ema_min_decay <= top:
            raise _bad("ema_min_decay", self.ema_min_decay, f"a float in [0, ema_decay={top}]")
        if self.mixed_precision not in MIXED_PRECISION:
            raise _bad("mixed_precision", self.mixed_precision, f"one of {MIXED_PRECISION}")
        if self.nonfinite not in NONFINITE:
            raise _bad("nonfinite", self.nonfinite, f"one of {NONFINITE}")
        if self.device is not None and not isinstance(self.device, str):
            raise _bad("device", self.device, "None or a device string such as 'cpu' or 'cuda:0'")
        if self.checkpoint_dir is not None:
            object.__setattr__(self, "checkpoint_dir", str(self.checkpoint_dir))
        for name in ("progress", "find_unused_parameters"):
            if not isinstance(getattr(self, name), bool):
                raise _bad(name, getattr(self, name), "a bool")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"TrainConfig: unknown fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def resume_changes(saved: dict, config: TrainConfig, *, saved_world_size: int,
                   world_size: int) -> tuple[dict, dict]:
    """Compare the config stored in a checkpoint with the config of the run resuming it.

    saved: ``TrainConfig.to_dict()`` as stored in the checkpoint's ``trainer.json`` (JSON types; fields this
        version does not know, or that the checkpoint lacks, are not compared).
    Returns ``(refused, free)``, each ``{name: (old, new)}``: ``refused`` holds the fields that change the
    training (and ``"global_batch"`` when ``batch_size x world_size x grad_accum`` differs), ``free`` the
    :data:`RESUME_FREE_FIELDS`, ``batch_size`` / ``grad_accum`` at an unchanged global batch, and ``"world_size"``.
    """
    refused, free = {}, {}
    for field in dataclasses.fields(config):
        if field.name not in saved:
            continue
        old, new = saved[field.name], getattr(config, field.name)
        if isinstance(old, list):  # JSON has no tuples (betas)
            old = tuple(old)
        if old == new and isinstance(old, bool) == isinstance(new, bool):  # 1 == 1.0, but True is no 1
            continue
        (free if field.name in RESUME_FREE_FIELDS or field.name in _BATCH_FIELDS else refused)[field.name] = (old, new)
    if saved_world_size != world_size:
        free["world_size"] = (saved_world_size, world_size)
    if all(name in saved for name in _BATCH_FIELDS):
        old_global = saved["batch_size"] * saved_world_size * saved["grad_accum"]
        new_global = config.batch_size * world_size * config.grad_accum
        if old_global != new_global:
            refused["global_batch"] = (old_global, new_global)
    return refused, free
