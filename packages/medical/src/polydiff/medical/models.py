"""The slice network: MONAI's ``DiffusionModelUNet`` (2-D) behind core's ``model(x, t, **cond)`` contract.

``SliceUNet(in_channels=..., ...)`` takes x: (batch, 1, H, W), the schedule time t: (batch,) in [0, 1] and an
optional ``cond``: (batch, cond_channels, H, W) concatenated to x, and returns (batch, 1, H, W). H and W must be
multiples of 2^(len(channels) - 1). It keeps ``config`` (its constructor arguments) and saves / loads through
``polydiff.core.pretrained`` (safetensors + JSON).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polydiff.core.pretrained import PretrainedMixin

__all__ = ["SliceUNet", "pad_to_multiple"]


class SliceUNet(PretrainedMixin, nn.Module):
    """A small 2-D diffusion U-Net (MONAI ``DiffusionModelUNet``: residual blocks with time embedding, no attention
    by default). t is multiplied by ``time_scale`` (1000) before MONAI's sinusoidal embedding, which expects
    DDPM-style step indices. ``residual``: the output is the first condition channel plus the network's output
    (MONAI zero-initialises the last convolution, so an untrained model returns the condition itself)."""

    def __init__(self, cond_channels: int = 0, channels: tuple[int, ...] = (16, 32, 32), num_res_blocks: int = 1,
                 norm_num_groups: int = 8, attention_levels: tuple[bool, ...] | None = None,
                 time_scale: float = 1000.0, residual: bool = False):
        super().__init__()
        from monai.networks.nets import DiffusionModelUNet

        channels = tuple(int(c) for c in channels)
        if isinstance(cond_channels, bool) or not isinstance(cond_channels, int) or cond_channels < 0:
            raise ValueError(f"cond_channels: expected an integer >= 0, got {cond_channels!r}")
        if not channels or any(c < 1 or c % norm_num_groups for c in channels):
            raise ValueError(f"channels: expected positive multiples of norm_num_groups={norm_num_groups}, "
                             f"got {channels}")
        attention_levels = tuple(bool(a) for a in attention_levels) if attention_levels is not None \
            else (False,) * len(channels)
        if len(attention_levels) != len(channels):
            raise ValueError(f"attention_levels: expected {len(channels)} flags, got {len(attention_levels)}")
        self.config = {"cond_channels": cond_channels, "channels": list(channels), "num_res_blocks": num_res_blocks,
                       "norm_num_groups": norm_num_groups, "attention_levels": list(attention_levels),
                       "time_scale": float(time_scale), "residual": bool(residual)}
        if residual and cond_channels < 1:
            raise ValueError("residual: needs a condition (cond_channels >= 1) to add the output to")
        self.residual = bool(residual)
        self.cond_channels, self.time_scale = cond_channels, float(time_scale)
        self.multiple = 2 ** (len(channels) - 1)
        self.net = DiffusionModelUNet(spatial_dims=2, in_channels=1 + cond_channels, out_channels=1,
                                      channels=channels, attention_levels=attention_levels,
                                      num_res_blocks=num_res_blocks, norm_num_groups=norm_num_groups,
                                      num_head_channels=channels[-1])

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        if (cond is None) != (self.cond_channels == 0):
            raise ValueError(f"cond: this network expects {self.cond_channels} conditioning channels")
        inputs = x if cond is None else torch.cat([x, cond.to(x.dtype)], dim=1)
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype).expand(x.shape[0])
        out = self.net(inputs, t * self.time_scale)
        return out + cond[:, :1].to(x.dtype) if self.residual else out


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """(x (..., H, W) extended by its edge values to the next multiples of ``multiple``, the original (H, W)): the
    sides a :class:`SliceUNet` takes (its ``multiple``); cut the output back with ``[..., :H, :W]``."""
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, (height, width)
