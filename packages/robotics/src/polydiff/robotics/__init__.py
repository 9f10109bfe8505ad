"""polydiff.robotics: Diffusion Policy, Diffuser planning and DPPO on MuJoCo (ObstacleReach) and Push-T.
ObstacleReach also comes with image observations (``make_env("obstacle", obs="image")``), for the image policies.

The verbs: ``collect_demos`` -> ``DiffusionPolicy.from_episodes(...).fit(...)`` -> ``rollout``; ``MLPPolicy``
(baselines), ``Diffuser`` (planning by inpainting), ``dppo_finetune`` (RL fine-tuning of the denoising chain).
Heavy modules are imported on first use.
"""

from __future__ import annotations

import importlib

__all__ = ["DiffusionPolicy", "MLPPolicy", "ImageDiffusionPolicy", "ImageMLPPolicy", "ImageEncoder", "load_policy",
           "Diffuser", "dppo_finetune", "collect_demos", "load_episodes", "Episodes", "sequence_windows", "MinMaxNormalizer", "rollout", "chunk_latency_ms",
           "make_env", "make_expert", "TASKS"]

_HOME = {"DiffusionPolicy": "policy", "MLPPolicy": "policy", "ImageDiffusionPolicy": "image_policy",
         "ImageMLPPolicy": "image_policy", "ImageEncoder": "vision", "load_policy": "policy", "Diffuser": "diffuser",
         "dppo_finetune": "dppo", "collect_demos": "data", "load_episodes": "data", "Episodes": "data",
         "sequence_windows": "data", "MinMaxNormalizer": "normalize", "rollout": "evaluate",
         "chunk_latency_ms": "evaluate", "make_env": "tasks", "make_expert": "tasks", "TASKS": "tasks"}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
