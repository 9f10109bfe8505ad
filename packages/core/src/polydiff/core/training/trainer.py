"""The one training loop of polydiff: ``Trainer(model, loss_fn, data, TrainConfig(...)).fit()``.

Every step: ``grad_accum`` micro-batches of ``batch_size`` per rank -> ``loss_fn(model, batch)`` under autocast ->
backward (DDP all-reduces on the last micro-batch) -> unscale (fp16) -> clip -> non-finite check -> AdamW ->
LR schedule -> EMA. Checkpoints (see :mod:`.checkpoint`) hold everything the next step depends on, so a run
killed at any moment and started again with the same ``checkpoint_dir`` ends with bitwise the same weights on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from . import checkpoint as ckpt
from .config import TrainConfig, resume_changes
from .distributed import DistInfo, ResumableDistributedSampler, barrier, init_distributed
from .ema import EMA

__all__ = ["Trainer", "Callback", "lr_factor"]

logger = logging.getLogger("polydiff.core.training")


def _notify(message: str) -> None:
    """An INFO record of ``polydiff.core.training``; printed to stderr while the program configures no logging,
    so a resume is never silent (the way ``logging.lastResort`` shows warnings)."""
    if logger.hasHandlers():
        logger.info(message)
    else:
        print(message, file=sys.stderr, flush=True)


def _overrides(value) -> bool | frozenset:
    """``resume_overrides`` as True (accept every change) or the frozenset of accepted names."""
    if isinstance(value, bool):
        return True if value else frozenset()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"resume_overrides: expected a bool or a collection of TrainConfig field names, "
                         f"got {value!r}")
    names = frozenset(value)
    known = {f.name for f in dataclasses.fields(TrainConfig)} | {"global_batch"}
    unknown = sorted(str(n) for n in names - known)
    if unknown:
        raise ValueError(f"resume_overrides: unknown names {unknown}; expected TrainConfig fields or "
                         "'global_batch'")
    return names


class Callback:
    """Hooks called on rank 0 and every other rank alike; override what you need."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, logs: dict | None) -> None:
        """After every optimizer step; ``logs`` is the metrics record on logging steps, else None."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


def lr_factor(step: int, *, steps: int, warmup_steps: int, schedule: str) -> float:
    """LR multiplier for the optimizer step made after ``step`` completed steps.

    Linear warm-up (step + 1) / warmup_steps, then cosine (0.5 (1 + cos(pi p))), linear (1 - p) or constant,
    with p = (step - warmup_steps) / (steps - warmup_steps) the progress after warm-up.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


def _to_device(batch, device: torch.device):
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [_to_device(v, device) for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    return batch


def _split_loss(output) -> tuple[Tensor, dict]:
    if isinstance(output, dict):
        if "loss" not in output:
            raise ValueError(f"loss_fn: returned a dict without 'loss' (keys {sorted(output)})")
        return output["loss"], {k: v for k, v in output.items() if k != "loss"}
    if not isinstance(output, Tensor):
        raise ValueError(f"loss_fn: expected a scalar tensor or a dict with 'loss', got {type(output).__name__}")
    return output, {}


def _resume_message(step: int, root: Path, changes: dict) -> str:
    message = f"resumed from step {step} of {root}"
    if "world_size" in changes:
        old, new = changes["world_size"]
        message += f"; written by {old} rank(s), now {new}: every rank draws a fresh (deterministic) random stream"
    others = [f"{name} {old!r} -> {new!r}" for name, (old, new) in changes.items() if name != "world_size"]
    if others:
        message += "; changed: " + ", ".join(others)
    return message


class Trainer:
    """Train ``model`` by minimising ``loss_fn(model, batch)`` over ``data``.

    model: any nn.Module (moved to the configured device). Under DDP ``loss_fn`` receives the
        ``DistributedDataParallel`` wrapper: call it, and reach attributes through ``getattr(m, "module", m)``.
    loss_fn: ``loss_fn(model, batch) -> scalar tensor`` or a dict with "loss" (other scalar entries are logged).
        The loss must be a mean over the batch, so the gradient is the mean over the global batch.
    data: a map-style ``torch.utils.data.Dataset``, or a tuple of tensors (made a ``TensorDataset``).
    eval_fn: ``eval_fn(trainer) -> dict of floats``, called on rank 0 every ``config.eval_every`` steps; logged
        with an ``eval/`` prefix.
    callbacks: :class:`Callback` objects.
    resume: None (default) resumes from the newest good checkpoint in ``config.checkpoint_dir`` if there is one;
        True requires one; False starts afresh. A resume is announced on rank 0 ("resumed from step N of DIR",
        an INFO record of the ``polydiff.core.training`` logger, printed to stderr when logging is not
        configured), with any change of world size or of the fields allowed to change.
    resume_overrides: what a resumed run may change in its TrainConfig besides
        :data:`~polydiff.core.training.config.RESUME_FREE_FIELDS` (``steps``, logging, checkpointing, device...)
        and ``batch_size`` / ``grad_accum`` at the same global batch. False (default): any other change raises a
        ``ValueError`` naming each field with its old and new value, before anything is loaded. A collection of
        field names (plus ``"global_batch"``) accepts those changes only; True accepts every change. Accepted
        values take effect: the optimizer's lr, betas, eps and weight decay are set from the new config.

    Attributes: ``model`` (unwrapped), ``ema_model`` (use it for sampling; the model itself without an EMA),
    ``step`` (optimizer steps done), ``skipped_steps``, ``optimizer``, ``scheduler``, ``device``, ``dist``.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, data, config: TrainConfig, *,
                 eval_fn: Callable | None = None, callbacks: Iterable[Callback] = (), resume: bool | None = None,
                 resume_overrides: bool | Iterable[str] = False):
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config: expected a TrainConfig, got {type(config).__name__}")
        if not isinstance(model, nn.Module):
            raise ValueError(f"model: expected an nn.Module, got {type(model).__name__}")
        if resume is True and config.checkpoint_dir is None:
            raise ValueError("resume=True: config.checkpoint_dir is None, there is nothing to resume from")
        self._resume_overrides = _overrides(resume_overrides)
        self.config, self.loss_fn, self.eval_fn = config, loss_fn, eval_fn
        self.callbacks = list(callbacks)
        if isinstance(data, tuple):
            lengths = [len(d) if isinstance(d, torch.Tensor) and d.ndim > 0 else None for d in data]
            if not data or None in lengths or len(set(lengths)) != 1:
                raise ValueError(f"data: expected a tuple of tensors with the same first dimension (one row per "
                                 f"sample), got lengths {lengths} (None: not a tensor with a batch dimension)")
            data = TensorDataset(*data)
        if not isinstance(data, Dataset) or not hasattr(data, "__len__"):
            raise ValueError("data: expected a map-style torch Dataset with __len__, or a tuple of tensors")
        self.dataset = data

        device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dist: DistInfo = init_distributed(device.type)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.dist.local_rank if self.dist.enabled else torch.cuda.current_device())
        self.device = device
        if config.mixed_precision == "fp16" and device.type != "cuda":
            raise ValueError(f"TrainConfig.mixed_precision: 'fp16' needs a CUDA device (loss scaling), the device "
                             f"is {device}; use 'bf16' or 'no'")
        self._autocast_dtype = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[config.mixed_precision]

        self.model = model.to(device)
        self._params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if not self._params:
            raise ValueError("model: has no parameters that require grad")
        self.optimizer = torch.optim.AdamW([p for _, p in self._params], lr=config.lr, betas=config.betas,
                                           eps=config.eps, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_lambda)
        self.scaler = torch.amp.GradScaler("cuda") if config.mixed_precision == "fp16" else None
        self.ema = None
        if config.ema_decay is not None:
            self.ema = EMA(self.model, max_decay=config.ema_decay, power=config.ema_power,
                           inv_gamma=config.ema_inv_gamma, min_decay=config.ema_min_decay, warmup=config.ema_warmup)
        self._train_model = self.model
        if self.dist.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self._train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=config.find_unused_parameters)

        self.global_batch = config.batch_size * self.dist.world_size * config.grad_accum
        self.sampler = ResumableDistributedSampler(len(self.dataset), global_batch=self.global_batch,
                                                   rank=self.dist.rank, world_size=self.dist.world_size,
                                                   seed=config.seed)
        self.step, self.epoch, self.epoch_samples, self.skipped_steps = 0, 0, 0, 0
        self._iterator = None
        self.root = Path(config.checkpoint_dir) if config.checkpoint_dir is not None else None
        self.resumed_from: Path | None = None
        self._resume(resume)

    # ------------------------------------------------------------------ public
    @property
    def ema_model(self) -> nn.Module:
        return self.ema.ema_model if self.ema is not None else self.model

    def fit(self) -> Trainer:
        """Train until ``config.steps`` optimizer steps are done; returns self."""
        config = self.config
        progress = self._progress_bar()
        writer = self._tensorboard()
        for callback in self.callbacks:
            callback.on_train_start(self)
        window_start, window_steps, window_good = time.perf_counter(), 0, 0
        loss_sum = torch.zeros((), device=self.device)
        extra_sums: dict[str, Tensor] = {}
        grad_norm = torch.zeros((), device=self.device)
        try:
            while self.step < config.steps:
                loss, extras, grad_norm, good = self._train_step()
                if good:  # skipped steps are counted, not averaged into the logged loss
                    loss_sum += loss
                    window_good += 1
                    for key, value in extras.items():
                        extra_sums[key] = extra_sums.get(key, 0.0) + value
                window_steps += 1
                logs = None
                if self.step % config.log_every == 0 or self.step == config.steps:
                    elapsed = time.perf_counter() - window_start
                    count = window_good if window_good else float("nan")
                    logs = self._log_record(loss_sum / count, {k: v / count for k, v in extra_sums.items()},
                                            grad_norm, window_steps / max(elapsed, 1e-9))
                    self._write_metrics(logs, writer)
                    if progress is not None:
                        progress.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)
                    window_start, window_steps, window_good = time.perf_counter(), 0, 0
                    loss_sum.zero_()
                    extra_sums = {}
                if config.eval_every is not None and self.step % config.eval_every == 0 and self.eval_fn:
                    self._evaluate(writer)
                if self.root is not None and (self.step % config.checkpoint_every == 0
                                              or self.step == config.steps):
                    self.save_checkpoint()
                if progress is not None:
                    progress.update(1)
                for callback in self.callbacks:
                    callback.on_step_end(self, logs)
            for callback in self.callbacks:
                callback.on_train_end(self)
            barrier(self.dist)  # no collective may still be in flight when the group goes away
        finally:
            if progress is not None:
                progress.close()
            if writer is not None:
                writer.close()
            if self.dist.initialised_here and dist.is_initialized():
                # free DDP's reducer (it holds gloo/nccl work objects) before the group, not at interpreter exit
                self._train_model = self.model
                dist.destroy_process_group()
        return self

    # ------------------------------------------------------------------ one optimizer step
    def _lr_lambda(self, step: int) -> float:
        c = self.config
        return lr_factor(step, steps=c.steps, warmup_steps=c.warmup_steps, schedule=c.lr_schedule)

    def _autocast(self):
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    def _train_step(self) -> tuple[Tensor, dict, Tensor, bool]:
        """One optimizer step; returns (mean loss, mean extra metrics, grad norm, whether the update was made)."""
        config = self.config
        self.optimizer.zero_grad(set_to_none=True)
        loss_total = torch.zeros((), device=self.device)
        extras: dict[str, Tensor] = {}
        for micro in range(config.grad_accum):
            batch = self._next_batch()
            sync = (self._train_model.no_sync() if self.dist.enabled and micro < config.grad_accum - 1
                    else contextlib.nullcontext())
            with sync:
                with self._autocast():
                    loss, more = _split_loss(self.loss_fn(self._train_model, batch))
                if loss.ndim != 0:
                    raise ValueError(f"loss_fn: the loss must be a scalar (a mean over the batch), got shape "
                                     f"{tuple(loss.shape)}")
                scaled = loss.float() / config.grad_accum
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            loss_total += loss.detach().float()
            for key, value in more.items():
                value = value.detach().float() if isinstance(value, Tensor) else torch.tensor(float(value))
                extras[key] = extras.get(key, 0.0) + value / config.grad_accum
        loss_mean = loss_total / config.grad_accum
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grads = [p.grad for _, p in self._params if p.grad is not None]
        if config.grad_clip is not None:
            grad_norm = nn.utils.clip_grad_norm_([p for _, p in self._params], config.grad_clip, foreach=True)
        elif grads:
            grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        else:
            grad_norm = torch.zeros((), device=self.device)
        finite = torch.stack([torch.isfinite(loss_mean), torch.isfinite(grad_norm)]).to(torch.int32)
        if self.dist.enabled:  # every rank must take the same branch
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        loss_ok, grads_ok = finite.tolist()
        if loss_ok and grads_ok:
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
        elif loss_ok and self.scaler is not None:
            # fp16 overflow: the scaler skips the step and lowers the scale, as loss scaling intends
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.skipped_steps += 1
        else:
            self._nonfinite(loss_mean, bool(loss_ok))
        self.scheduler.step()
        self.step += 1
        if self.ema is not None and loss_ok and grads_ok:
            self.ema.update(self.model, self.step)
        self.epoch_samples += self.global_batch
        if self.epoch_samples + self.global_batch > len(self.dataset):
            self.epoch, self.epoch_samples, self._iterator = self.epoch + 1, 0, None
        return loss_mean.detach(), extras, grad_norm.detach(), bool(loss_ok and grads_ok)

    def _nonfinite(self, loss: Tensor, loss_ok: bool) -> None:
        step = self.step + 1
        if loss_ok:
            bad = [n for n, p in self._params if p.grad is not None and not torch.isfinite(p.grad).all()]
            what = (f"the gradient of parameter {bad[0]!r}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
                    if bad else "a gradient on another rank")
        else:
            what = f"the loss ({loss.item()})" if not torch.isfinite(loss).item() else "the loss on another rank"
        if self.config.nonfinite == "raise":
            where = f"; the last good checkpoint is kept in {self.root}" if self.root is not None else ""
            raise RuntimeError(f"non-finite value at step {step}: {what} is NaN or inf{where}")
        self.skipped_steps += 1
        self.optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ data
    def _next_batch(self):
        if self._iterator is None:
            self.sampler.set_epoch(self.epoch, self.epoch_samples)
            generator = torch.Generator()
            generator.manual_seed(self.config.seed * 1_000_003 + self.epoch * 1009 + self.dist.rank)
            # an explicit generator keeps DataLoader from drawing its worker seed from the global RNG
            loader = DataLoader(self.dataset, batch_size=self.config.batch_size, sampler=self.sampler,
                                num_workers=self.config.num_workers, generator=generator,
                                pin_memory=self.device.type == "cuda", drop_last=False)
            self._iterator = iter(loader)
        return _to_device(next(self._iterator), self.device)

    # ------------------------------------------------------------------ logging
    def _log_record(self, loss: Tensor, extras: dict, grad_norm: Tensor, steps_per_s: float) -> dict:
        values = torch.stack([loss.float(), *(v.float().to(self.device) for v in extras.values())])
        if self.dist.enabled:
            dist.all_reduce(values)
            values /= self.dist.world_size
        values = values.tolist()
        record = {"step": self.step, "epoch": self.epoch, "loss": values[0]}
        record.update({k: v for k, v in zip(extras, values[1:], strict=True)})
        record.update({"lr": self.scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
                       "steps_per_s": steps_per_s, "skipped_steps": self.skipped_steps})
        if self.ema is not None:
            record["ema_decay"] = self.ema.decay
        return record

    def _write_metrics(self, record: dict, writer) -> None:
        if not self.dist.is_main:
            return
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in record.items()}
            with open(self.root / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(clean) + "\n")
        if writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    writer.add_scalar(key, value, record["step"])

    def _evaluate(self, writer) -> None:
        if self.dist.is_main:
            metrics = self.eval_fn(self) or {}
            record = {"step": self.step, **{f"eval/{k}": float(v) for k, v in metrics.items()}}
            self._write_metrics(record, writer)
        barrier(self.dist)

    def _progress_bar(self):
        if not (self.config.progress and self.dist.is_main):
            return None
        from ..progress import on_terminal, progress_bar

        if not on_terminal():  # a log gets the metrics records, not a redrawn bar
            return None
        return progress_bar(total=self.config.steps, initial=self.step, unit="step", dynamic_ncols=True,
                            desc="train")

    def _tensorboard(self):
        if not self.dist.is_main or self.root is None:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return None
        return SummaryWriter(log_dir=str(self.root / "tensorboard"), purge_step=self.step or None)

    # ------------------------------------------------------------------ checkpoints
    def _state_document(self) -> dict:
        return {
            "step": self.step, "epoch": self.epoch, "epoch_samples": self.epoch_samples,
            "skipped_steps": self.skipped_steps, "world_size": self.dist.world_size,
            "global_batch": self.global_batch, "dataset_len": len(self.dataset),
            "scheduler": ckpt.encode_state(self.scheduler.state_dict(), {}),
            "scaler": ckpt.encode_state(self.scaler.state_dict(), {}) if self.scaler is not None else None,
            "ema_decay": self.ema.decay if self.ema is not None else None,
            "config": self.config.to_dict(),
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoint_dir/step-<step>`` atomically (rank 0; every rank adds its RNG state)."""
        if self.root is None:
            raise ValueError("save_checkpoint: config.checkpoint_dir is None")
        tmp = ckpt.tmp_dir_for(self.root, self.step)
        if self.dist.is_main:
            self.root.mkdir(parents=True, exist_ok=True)
            ckpt.clean_temp(self.root)
            tmp.mkdir()
        barrier(self.dist)
        tensors, document = ckpt.rng_state()
        ckpt.write_tensors(tmp / f"rng-rank{self.dist.rank}.safetensors", tensors)
        ckpt.write_json(tmp / f"rng-rank{self.dist.rank}.json", document)
        final = None
        if self.dist.is_main:
            ckpt.save_module(self.model, tmp / "model.safetensors")
            if self.ema is not None:
                ckpt.save_module(self.ema.ema_model, tmp / "ema.safetensors")
            optim_tensors: dict = {}
            optim_doc = ckpt.encode_state(self.optimizer.state_dict(), optim_tensors, "optimizer")
            ckpt.write_tensors(tmp / "optimizer.safetensors", optim_tensors)
            ckpt.write_json(tmp / "optimizer.json", optim_doc)
            ckpt.write_json(tmp / "trainer.json", self._state_document())
        barrier(self.dist)
        if self.dist.is_main:
            final = ckpt.finalize(self.root, self.step)
            ckpt.prune(self.root, self.config.keep_last)
        barrier(self.dist)
        final = final or self.root / f"step-{self.step:08d}"
        for callback in self.callbacks:
            callback.on_checkpoint(self, final)
        return final

    def _resume(self, resume: bool | None) -> None:
        found = None
        if resume is not False and self.root is not None:
            found = self._agree_on_checkpoint()
        if found is None:
            if resume is True:
                raise FileNotFoundError(f"resume=True: no valid checkpoint in {self.root}")
            seed = self.config.seed + self.dist.rank
            random.seed(seed)
            np.random.seed(seed % 2**32)  # noqa: NPY002
            torch.manual_seed(seed)
            return
        self.load_checkpoint(found, verify=not self.dist.is_main)  # rank 0 has just verified it

    def _agree_on_checkpoint(self) -> Path | None:
        step = -1
        if self.dist.is_main:
            path = ckpt.latest_valid(self.root)
            step = -1 if path is None else int(path.name.split("-")[1])
        if self.dist.enabled:
            value = torch.tensor([step], dtype=torch.int64, device=self.device)
            dist.broadcast(value, src=0)
            step = int(value.item())
        return None if step < 0 else self.root / f"step-{step:08d}"

    def load_checkpoint(self, path: Path, *, verify: bool = True) -> None:
        """Restore the full training state from a checkpoint directory (checked against its manifest first).

        Raises ValueError, before anything is loaded, when this run's TrainConfig differs from the checkpoint's in
        a field that changes the training and ``resume_overrides`` does not accept it (see :class:`Trainer`).
        """
        path = Path(path)
        if verify:
            ckpt.verify(path)
        state = ckpt.read_json(path / "trainer.json")
        changes = self._check_resume_config(path, state)
        ckpt.load_module(self.model, path / "model.safetensors")
        if self.ema is not None:
            if (path / "ema.safetensors").is_file():
                ckpt.load_module(self.ema.ema_model, path / "ema.safetensors")
                self.ema.decay = state["ema_decay"] or 0.0
            else:
                self.ema.ema_model.load_state_dict(self.model.state_dict())
        optim_tensors = ckpt.load_tensors(path / "optimizer.safetensors")
        self.optimizer.load_state_dict(ckpt.decode_state(ckpt.read_json(path / "optimizer.json"), optim_tensors))
        self.scheduler.load_state_dict(ckpt.decode_state(state["scheduler"], {}))
        self._apply_optimizer_config()
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(ckpt.decode_state(state["scaler"], {}))
        if state["dataset_len"] != len(self.dataset):
            warnings.warn(f"resuming {path.name}: the dataset has {len(self.dataset)} samples, the checkpoint was "
                          f"written with {state['dataset_len']}; the data order is no longer the original run's",
                          RuntimeWarning, stacklevel=3)
        self.step, self.skipped_steps = state["step"], state["skipped_steps"]
        self.epoch, self.epoch_samples = state["epoch"], state["epoch_samples"]
        if self.epoch_samples + self.global_batch > len(self.dataset):  # global batch grew on resume
            self.epoch, self.epoch_samples = self.epoch + 1, 0
        self._iterator = None
        rng_tensors = path / f"rng-rank{self.dist.rank}.safetensors"
        if rng_tensors.is_file() and state["world_size"] == self.dist.world_size:
            ckpt.set_rng_state(ckpt.load_tensors(rng_tensors), ckpt.read_json(path / f"rng-rank{self.dist.rank}.json"))
        else:  # a different number of ranks: a fresh, still deterministic, stream per rank
            seed = (self.config.seed + 7919 * self.step + self.dist.rank) % 2**63
            random.seed(seed)
            np.random.seed(seed % 2**32)  # noqa: NPY002
            torch.manual_seed(seed)
        self.resumed_from = path
        if self.dist.is_main and self.root is not None:
            self._truncate_metrics()
        if self.dist.is_main:
            _notify(_resume_message(self.step, self.root or path.parent, changes))

    def _check_resume_config(self, path: Path, state: dict) -> dict:
        """The config changes of this resume, ``{name: (old, new)}``; raises ValueError for refused ones."""
        refused, free = resume_changes(state["config"], self.config, saved_world_size=state["world_size"],
                                       world_size=self.dist.world_size)
        allowed = self._resume_overrides
        blocked = {k: v for k, v in refused.items() if not (allowed is True or k in allowed)}
        if blocked:
            listed = "; ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in blocked.items())
            hint = ""
            if "global_batch" in blocked:
                old, new = state["config"], self.config
                per_rank, rest = divmod(blocked["global_batch"][0], self.dist.world_size * new.grad_accum)
                keep = f"; batch_size={per_rank} keeps it" if not rest and per_rank else ""
                hint = (f" (batch_size x world_size x grad_accum: {old['batch_size']} x {state['world_size']} x "
                        f"{old['grad_accum']} -> {new.batch_size} x {self.dist.world_size} x {new.grad_accum}"
                        f"{keep})")
            raise ValueError(
                f"TrainConfig: the checkpoint {path} was written with different settings: {listed}{hint}. "
                f"Pass Trainer(..., resume_overrides={sorted(blocked)!r}) (or True) to continue from step "
                f"{state['step']} with the new values, or give another checkpoint_dir to start afresh")
        return {**free, **refused}

    def _apply_optimizer_config(self) -> None:
        """Set lr, betas, eps and weight decay from ``self.config`` after a checkpoint's optimizer state is loaded
        (which restores the old values), and the current LR from the schedule of the current ``steps``. With an
        unchanged config this rewrites the same numbers (``base_lr * lr_lambda(step)`` is what LambdaLR stored)."""
        config, scheduler = self.config, self.scheduler
        scheduler.base_lrs = [config.lr for _ in self.optimizer.param_groups]
        factor = self._lr_lambda(scheduler.last_epoch)
        for group in self.optimizer.param_groups:
            group.update(lr=config.lr * factor, initial_lr=config.lr, betas=config.betas, eps=config.eps,
                         weight_decay=config.weight_decay)
        scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _truncate_metrics(self) -> None:
        """Drop metrics lines past the resumed step (logged by the run that was killed after its checkpoint)."""
        path = self.root / "metrics.jsonl"
        if not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= self.step:
                    kept.append(line)
            except ValueError:  # a line cut short by the kill
                continue
        tmp = path.with_name(".metrics.jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)
