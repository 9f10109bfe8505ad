"""DDP: 2 CPU ranks under torchrun (gloo) train exactly like 1 rank with the same global batch, and a run
resumes with a different number of ranks."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

SCRIPT = Path(__file__).with_name("training_script.py")
pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


def _script():
    spec = importlib.util.spec_from_file_location("polydiff_training_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torchrun(args, timeout=120):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                           "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
               str(SCRIPT), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _assert_close(weights, trainer, prefix_model="model.", prefix_ema="ema."):
    for name, value in trainer.model.state_dict().items():
        torch.testing.assert_close(weights[prefix_model + name], value, rtol=0, atol=1e-6)
    for name, value in trainer.ema_model.state_dict().items():
        torch.testing.assert_close(weights[prefix_ema + name], value, rtol=0, atol=1e-6)


def test_two_ranks_resuming_a_one_rank_run_match_one_rank_with_the_same_global_batch(tmp_path):
    """1 rank x batch 16 stopped after 6 of 14 steps, then 2 ranks x batch 8 resume to step 14
    == 1 rank x batch 16 for 14 steps."""
    torch.set_num_threads(1)
    script = _script()
    ckpt_dir = tmp_path / "ckpt"
    first = script.train(script.parser().parse_args(
        ["--ckpt", str(ckpt_dir), "--steps", "14", "--batch-size", "16", "--checkpoint-every", "3", "--stop-at", "6"]))
    assert first.step == 6
    out = tmp_path / "ddp.safetensors"
    done = _torchrun(["--ckpt", str(ckpt_dir), "--steps", "14", "--batch-size", "8", "--checkpoint-every", "100",
                      "--out", str(out)])
    assert done.stdout.split()[:2] == ["step", "7"]  # resumed from step 6 on 2 ranks
    # rank 0 alone reports it, with the change of world size and the per-rank batch that keeps the global batch
    assert done.stderr.count("resumed from step 6 of") == 1, done.stderr[-2000:]
    assert f"resumed from step 6 of {ckpt_dir}; written by 1 rank(s), now 2" in done.stderr
    assert "batch_size 16 -> 8" in done.stderr
    reference = script.train(script.parser().parse_args(
        ["--ckpt", str(tmp_path / "ref"), "--steps", "14", "--batch-size", "16", "--checkpoint-every", "100"]))
    _assert_close(load_file(str(out)), reference)
    trainer_state = (ckpt_dir / "step-00000014" / "trainer.json").read_text()
    assert '"world_size": 2' in trainer_state


def test_two_ranks_with_grad_accumulation_match_one_rank_with_the_same_global_batch(tmp_path):
    """2 ranks x batch 4 x grad_accum 2 (DDP no_sync on the first micro-batch) == 1 rank x batch 16."""
    torch.set_num_threads(1)
    script = _script()
    out = tmp_path / "ddp.safetensors"
    _torchrun(["--ckpt", str(tmp_path / "ddp"), "--steps", "14", "--batch-size", "4", "--grad-accum", "2",
               "--checkpoint-every", "5", "--out", str(out)])
    reference = script.train(script.parser().parse_args(
        ["--ckpt", str(tmp_path / "ref"), "--steps", "14", "--batch-size", "16", "--checkpoint-every", "100"]))
    _assert_close(load_file(str(out)), reference)
    # rank 0 alone wrote the checkpoints; every rank added its RNG state
    names = {p.name for p in (tmp_path / "ddp" / "step-00000014").iterdir()}
    assert {"rng-rank0.json", "rng-rank1.json", "model.safetensors"} <= names
