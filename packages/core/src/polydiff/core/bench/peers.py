"""The peer rows: diffusers' schedulers driven by the same exact eps model from the same x_T.

Every peer runs the loop diffusers documents: ``set_timesteps(n)``, then for each timestep
``model_output = model(scale_model_input(x, t), t)`` and ``x = step(model_output, t, x).prev_sample``, starting
from ``x_T * init_noise_sigma``. The model receives diffusers' own timestep (an integer index, or for Euler a
fractional one), which the exact model maps to continuous time as ``t = (index + 1) / N``.

Each scheduler is configured at its documented best settings for an unconditional eps model: DDIM with
``clip_sample=False`` (the mixture's data range exceeds [-1, 1]) and "trailing" or "linspace" spacing (its
default "leading" spacing starts below t = 1, at a noise level x_T was not drawn for); DPM-Solver++ and UniPC at
orders 2 and 3 (diffusers recommends 3 for unconditional sampling), with and without Karras sigmas, with both
final-sigma types; DPM-Solver++ also with Lu's uniform-lambda spacing. A run ends at t = 0 when its last sigma
is zero (final_sigmas_type "zero", DDIM with set_alpha_to_one, Euler) and at t_min when it is sigma_min; the
benchmark measures each against the reference at its own end time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["PeerConfig", "peer_configs", "run_peer"]


@dataclass(frozen=True)
class PeerConfig:
    """One diffusers scheduler configuration. ``end`` is the time the run ends at: "t_min" or "zero"."""

    name: str
    scheduler: str
    kwargs: dict = field(default_factory=dict)
    end: str = "zero"
    family: str = ""

    def __post_init__(self):
        if self.end not in ("t_min", "zero"):
            raise ValueError(f"end: expected 't_min' or 'zero', got {self.end!r}")

    def build(self):
        from ..optional import require

        diffusers = require("diffusers", "polydiff-core[bench]", "the diffusers rows of polydiff bench core; "
                            "or run it with --no-peers")
        return getattr(diffusers, self.scheduler)(**self.kwargs)


def peer_configs(quick: bool = False) -> list[PeerConfig]:
    """The diffusers configurations of the benchmark (a subset in quick mode)."""
    configs = []
    for spacing in ("trailing", "linspace"):
        configs.append(PeerConfig(f"diffusers DDIM {spacing}", "DDIMScheduler",
                                  dict(clip_sample=False, timestep_spacing=spacing), "zero", "DDIM"))
    for order in (2, 3):
        for sigmas, extra in (("", {}), (" karras", dict(use_karras_sigmas=True)),
                              (" lu", dict(use_lu_lambdas=True))):
            for final in ("sigma_min", "zero"):
                configs.append(PeerConfig(
                    f"diffusers DPMSolverMultistep {order}M{sigmas} final={final}", "DPMSolverMultistepScheduler",
                    dict(algorithm_type="dpmsolver++", solver_order=order, final_sigmas_type=final, **extra),
                    "t_min" if final == "sigma_min" else "zero", f"DPMSolverMultistep {order}M"))
    for variant in ("bh1", "bh2"):
        for order in (2, 3):
            for sigmas, extra in (("", {}), (" karras", dict(use_karras_sigmas=True))):
                for final in ("sigma_min", "zero"):
                    configs.append(PeerConfig(
                        f"diffusers UniPC {variant} order{order}{sigmas} final={final}", "UniPCMultistepScheduler",
                        dict(solver_type=variant, solver_order=order, final_sigmas_type=final, **extra),
                        "t_min" if final == "sigma_min" else "zero", "UniPCMultistep"))
    for sigmas, extra in (("", {}), (" karras", dict(use_karras_sigmas=True))):
        configs.append(PeerConfig(f"diffusers EulerDiscrete{sigmas}", "EulerDiscreteScheduler", extra, "zero",
                                  "EulerDiscrete"))
    if quick:
        keep = {"diffusers DDIM trailing", "diffusers DPMSolverMultistep 2M final=sigma_min",
                "diffusers DPMSolverMultistep 2M final=zero", "diffusers DPMSolverMultistep 2M karras final=zero",
                "diffusers DPMSolverMultistep 3M final=sigma_min", "diffusers UniPC bh1 order2 final=sigma_min",
                "diffusers UniPC bh2 order2 final=sigma_min", "diffusers UniPC bh2 order2 final=zero",
                "diffusers EulerDiscrete"}
        configs = [c for c in configs if c.name in keep]
    return configs


def run_peer(scheduler, model, x_start: Tensor, num_steps: int) -> tuple[Tensor, int]:
    """Sample with a diffusers scheduler from x_start (unit-variance noise): returns (samples, model calls)."""
    scheduler.set_timesteps(num_steps)
    x = x_start * scheduler.init_noise_sigma
    calls = 0
    for t in scheduler.timesteps:
        output = model(scheduler.scale_model_input(x, t), t)
        calls += 1
        x = scheduler.step(output, t, x).prev_sample
    return x, calls
