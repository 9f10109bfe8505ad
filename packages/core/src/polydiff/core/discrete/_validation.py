"""Argument checks shared by the discrete-state diffusion modules.

Each check raises ``ValueError`` naming the argument, what was given and what was expected. They make host
syncs (``bool(...)`` on a reduction), so samplers call them once before their loop, not at every step.
"""

from __future__ import annotations

import torch
from torch import Tensor

_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def check_tokens(name: str, x, num_classes: int, *, min_ndim: int = 1) -> Tensor:
    """x: integer tensor (batch, ...) with every value in [0, num_classes)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected an integer torch tensor, got {type(x).__name__}")
    if x.dtype not in _INTEGER_DTYPES:
        raise ValueError(f"{name}: expected an integer (long) tensor of category indices, got dtype {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dimension(s) (batch, ...), got shape {tuple(x.shape)}")
    if x.numel() and (bool((x < 0).any()) or bool((x >= num_classes).any())):
        raise ValueError(f"{name}: category index out of range; expected values in [0, {num_classes}), "
                         f"got min {int(x.min())}, max {int(x.max())}")
    return x.long()


def check_logits(name: str, logits, shape: tuple[int, ...], num_classes: int) -> Tensor:
    """logits: floating tensor of shape ``shape + (num_classes,)``; -inf allowed (a forbidden class), NaN and
    +inf not."""
    expected = tuple(shape) + (num_classes,)
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor of shape {expected}")
    if tuple(logits.shape) != expected:
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(logits.shape)}")
    if bool(torch.isnan(logits).any()):
        raise ValueError(f"{name}: contains NaN")
    if bool((logits == float("inf")).any()):
        raise ValueError(f"{name}: contains +inf")
    if logits.numel() and bool(torch.isinf(logits).all(-1).any()):
        raise ValueError(f"{name}: some position has every logit at -inf (no class allowed)")
    return logits


def check_probs(name: str, probs, shape: tuple[int, ...] | None = None, *, atol: float = 1e-5) -> Tensor:
    """probs: floating tensor (..., K), finite, non-negative, each row summing to one within ``atol``."""
    if not isinstance(probs, Tensor) or not probs.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor of probabilities")
    if shape is not None and tuple(probs.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(probs.shape)}")
    if not bool(torch.isfinite(probs).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    if bool((probs < 0).any()):
        raise ValueError(f"{name}: contains negative probabilities")
    total = probs.sum(-1)
    if not bool(torch.allclose(total, torch.ones_like(total), atol=atol, rtol=0)):
        worst = float((total - 1).abs().max())
        raise ValueError(f"{name}: probabilities must sum to one over the last axis (worst error {worst:.3g})")
    return probs


def check_unit_interval(name: str, p, shape: tuple[int, ...]) -> Tensor:
    """p: floating tensor of the given shape with every value in [0, 1] (independent probabilities)."""
    if not isinstance(p, Tensor) or not p.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor of shape {tuple(shape)}")
    if tuple(p.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(p.shape)}")
    if not bool(torch.isfinite(p).all()) or bool(((p < 0) | (p > 1)).any()):
        raise ValueError(f"{name}: expected finite probabilities in [0, 1]")
    return p


def check_time(name: str, t, batch: int, *, low: float, high: float, integer: bool = False) -> Tensor:
    """t: scalar or (batch,) tensor in [low, high]; returns (batch,) (long if ``integer`` else float64)."""
    t = torch.as_tensor(t)
    if integer and t.dtype not in _INTEGER_DTYPES:
        raise ValueError(f"{name}: expected integer time steps, got dtype {t.dtype}")
    if not integer and not (t.is_floating_point() or t.dtype in _INTEGER_DTYPES):
        raise ValueError(f"{name}: expected real times, got dtype {t.dtype}")
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"{name}: expected a scalar or shape ({batch},), got {tuple(t.shape)}")
    if not integer and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    if bool((t < low).any()) or bool((t > high).any()):
        raise ValueError(f"{name}: expected values in [{low}, {high}], got min {float(t.min())}, max {float(t.max())}")
    return t.long() if integer else t.to(torch.float64)


def sample_categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one index per row of ``probs`` (..., K) by inverting the CDF; returns (...,) long."""
    cdf = probs.to(torch.float64).cumsum(-1)
    u = uniform(probs.shape[:-1] + (1,), generator, probs.device)
    u = u * cdf[..., -1:]  # rows summing to 1 up to rounding stay exact
    index = (cdf <= u).sum(-1)
    return index.clamp_max(probs.shape[-1] - 1)


def uniform(shape, generator: torch.Generator | None, device) -> Tensor:
    """U(0, 1) float64 of ``shape`` on ``device``, drawn on the generator's own device (a CPU generator may
    drive a CUDA run and the reverse)."""
    source = generator.device if generator is not None else device
    return torch.rand(tuple(shape), generator=generator, device=source, dtype=torch.float64).to(device)


def random_integers(low: int, high: int, shape, generator: torch.Generator | None, device) -> Tensor:
    """Uniform integers in [low, high) of ``shape`` (long) on ``device``, drawn on the generator's device."""
    source = generator.device if generator is not None else device
    return torch.randint(low, high, tuple(shape), generator=generator, device=source).to(device)
