"""A small CNN observation encoder for image observations: a few convolutions and a spatial softmax.

Diffusion Policy's vision encoder (Chi et al., 2023, sec. 3.3) is a ResNet-18 whose global average pooling is
replaced by a spatial softmax and whose BatchNorm is replaced by GroupNorm, trained end to end with the policy.
:class:`ImageEncoder` keeps those two choices at a size that trains on a CPU: three convolutions with GroupNorm
and Mish, a 1x1 convolution to ``keypoints`` feature maps, the spatial softmax (Levine et al., 2016, "End-to-End
Training of Deep Visuomotor Policies", sec. 4.1) that turns each map into the expected image position of its
activation, and a linear layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SpatialSoftmax", "ImageEncoder"]


class SpatialSoftmax(nn.Module):
    """(batch, channels, height, width) -> (batch, 2 * channels): per channel, the expected (x, y) image
    coordinates in [-1, 1] under a softmax over its height * width positions, with a learned temperature. The
    output is a soft argmax, so it resolves positions finer than one cell of the feature map."""

    def __init__(self, height: int, width: int):
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], -1), persistent=False)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, features: Tensor) -> Tensor:
        attention = torch.softmax(features.flatten(2) / self.log_temperature.exp(), dim=-1)  # (batch, C, H*W)
        return (attention @ self.grid).flatten(1)


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ImageEncoder(nn.Module):
    """uint8 RGB frames (batch, image_size, image_size, 3) -> features (batch, feature_dim).

    The first ``downsample`` convolutions (5x5, then 3x3) halve the resolution each, the others (3x3) keep it, so
    the spatial softmax reads keypoints on an (image_size / 2^downsample)^2 grid (16 x 16 for 64 x 64 frames at
    the default 2: the soft argmax still places a keypoint between cells; 32 x 32 at 1, for about three times
    the compute). Pixels are scaled to [-1, 1] inside, so the encoder takes the frames as an environment renders
    them.
    """

    def __init__(self, image_size: int = 64, channels=(8, 16, 32), keypoints: int = 32, feature_dim: int = 64,
                 downsample: int = 2):
        super().__init__()
        channels = list(channels)
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8 or image_size % 4:
            raise ValueError(f"image_size: expected a multiple of 4, at least 8, got {image_size!r}")
        if not channels or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels):
            raise ValueError(f"encoder_channels: expected positive integer widths, got {channels!r}")
        for name, value in (("keypoints", keypoints), ("feature_dim", feature_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if isinstance(downsample, bool) or downsample not in range(min(2, len(channels)) + 1):
            raise ValueError(f"encoder_downsample: expected 0 to {min(2, len(channels))} halvings, got {downsample!r}")
        self.image_size = image_size
        layers: list[nn.Module] = []
        width = 3
        for i, c in enumerate(channels):
            kernel, stride = (5 if i == 0 else 3), (2 if i < downsample else 1)
            layers += [nn.Conv2d(width, c, kernel, stride=stride, padding=kernel // 2), nn.GroupNorm(_groups(c), c),
                       nn.Mish()]
            width = c
        layers.append(nn.Conv2d(width, keypoints, 1))
        self.convs = nn.Sequential(*layers)
        grid = image_size // 2 ** downsample
        self.spatial_softmax = SpatialSoftmax(grid, grid)
        self.project = nn.Linear(2 * keypoints, feature_dim)
        self.feature_dim = feature_dim

    def forward(self, pixels: Tensor) -> Tensor:
        images = pixels.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return self.project(self.spatial_softmax(self.convs(images)))
