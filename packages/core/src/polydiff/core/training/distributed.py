"""Process-group plumbing for DDP runs launched by ``torchrun``, and the resumable distributed sampler.

``torchrun`` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; when WORLD_SIZE > 1 the Trainer
initialises the default process group from them (``nccl`` for CUDA, ``gloo`` for CPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = ["DistInfo", "init_distributed", "barrier", "ResumableDistributedSampler"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join (or create, from torchrun's env vars) the default process group; a no-op for one process."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_world_size())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank, local_rank, world_size, initialised_here=True)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


class ResumableDistributedSampler(Sampler[int]):
    """DistributedSampler's order, able to start in the middle of an epoch.

    Epoch e uses the permutation P = randperm(n) drawn from a generator seeded with ``seed + e`` (the order depends
    on (seed, epoch) only, as in ``torch.utils.data.DistributedSampler`` with ``set_epoch``). Starting after
    ``start`` samples of the epoch, rank r of w yields ``P[start + r : end : w]`` where ``end`` leaves a whole
    number of global batches (the tail is dropped). So the global batch of every optimizer step is the same
    block of P for any world size, and a run resumed with a different number of ranks sees the same data.
    ``torch.utils.data.DistributedSampler`` cannot start mid-epoch, which exact resume needs.
    """

    def __init__(self, num_samples: int, *, global_batch: int, rank: int = 0, world_size: int = 1, seed: int = 0):
        if num_samples < global_batch:
            raise ValueError(f"data: {num_samples} samples is fewer than one global batch ({global_batch} = "
                             "batch_size x world_size x grad_accum)")
        self.num_samples, self.global_batch = num_samples, global_batch
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def steps_left(self) -> int:
        """Optimizer steps left in the epoch from ``start``."""
        return (self.num_samples - self.start) // self.global_batch

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_samples, generator=generator)
        end = self.start + self.steps_left() * self.global_batch
        return iter(order[self.start + self.rank:end:self.world_size].tolist())

    def __len__(self) -> int:
        return self.steps_left() * self.global_batch // self.world_size
