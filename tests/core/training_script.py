"""Subprocess entry for the training tests: a small MLP trained through the Trainer.

    python training_script.py --ckpt DIR --steps N --out FILE [--noisy] [--batch-size B] [--grad-accum A]

``--noisy`` makes the loss draw from torch, numpy and python ``random`` and use dropout, so exact resume needs
every RNG state restored. Each finished step prints ``step <n>`` (flushed) so a parent can kill the run at a step.
Also run under ``torchrun`` for the DDP tests. The final weights (and EMA) go to ``--out`` as safetensors.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from polydiff.core.training import Callback, TrainConfig, Trainer


def make_data(seed: int = 0, n: int = 96):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=generator)
    y = torch.sin(x @ torch.randn(6, 3, generator=generator))
    return x, y


def make_model(noisy: bool) -> nn.Module:
    torch.manual_seed(1234)
    layers = [nn.Linear(6, 32), nn.SiLU()]
    if noisy:
        layers.append(nn.Dropout(0.1))
    return nn.Sequential(*layers, nn.Linear(32, 32), nn.SiLU(), nn.Linear(32, 3))


def deterministic_loss(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def noisy_loss(model, batch):
    x, y = batch
    jitter = float(np.random.uniform(0.9, 1.1)) * random.uniform(0.9, 1.1)  # noqa: NPY002
    noisy = x + 0.1 * torch.randn_like(x)
    return {"loss": jitter * ((model(noisy) - y) ** 2).mean(), "jitter": jitter}


class Stop(Exception):
    pass


class PrintStep(Callback):
    def __init__(self, stop_at=None, sleep=0.0):
        self.stop_at, self.sleep = stop_at, sleep

    def on_step_end(self, trainer, logs):
        if trainer.dist.is_main:
            print(f"step {trainer.step}", flush=True)
        if self.sleep:  # leaves a parent that reads these lines time to kill the run mid-way
            time.sleep(self.sleep)
        if trainer.step == self.stop_at:  # an interruption after the checkpoint of this step is on disk
            raise Stop


def config(args) -> TrainConfig:
    return TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=3e-3,
                       weight_decay=0.01, warmup_steps=5, lr_schedule="cosine", grad_clip=1.0, ema_decay=0.99,
                       ema_warmup=3, checkpoint_dir=args.ckpt, checkpoint_every=args.checkpoint_every, keep_last=2,
                       log_every=10, seed=args.seed, device="cpu")


def train(args) -> Trainer:
    loss = noisy_loss if args.noisy else deterministic_loss
    trainer = Trainer(make_model(args.noisy), loss, make_data(), config(args), callbacks=[PrintStep(args.stop_at, args.step_sleep)])
    try:
        trainer.fit()
    except Stop:
        pass
    return trainer


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", default=None)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--checkpoint-every", type=int, default=7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noisy", action="store_true")
    p.add_argument("--stop-at", type=int, default=None)
    p.add_argument("--step-sleep", type=float, default=0.0)
    p.add_argument("--out", default=None)
    return p


def main(argv=None) -> int:
    torch.set_num_threads(1)
    args = parser().parse_args(argv)
    trainer = train(args)
    if args.out and int(os.environ.get("RANK", "0")) == 0:
        tensors = {f"model.{k}": v.contiguous() for k, v in trainer.model.state_dict().items()}
        tensors.update({f"ema.{k}": v.contiguous() for k, v in trainer.ema_model.state_dict().items()})
        save_file(tensors, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
