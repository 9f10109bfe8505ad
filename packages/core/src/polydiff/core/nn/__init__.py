"""Shared denoising networks: time embeddings, FiLM, a 1-D temporal U-Net, the TabDDPM MLP and DiT blocks.

Every module takes plain tensors and keeps ``self.config``, a JSON-serialisable dict of its constructor arguments,
so ``type(module)(**module.config)`` rebuilds it. The denoising networks (``MLPDenoiser``, ``UNet1D``,
``TransformerDenoiser``, ``WaveNetDenoiser``) also carry ``save_pretrained(dir)`` / ``cls.from_pretrained(dir)`` through
:class:`polydiff.core.pretrained.PretrainedMixin` (safetensors weights + that config as JSON).
"""

from .embeddings import FiLM, GaussianFourierEmbedding, SinusoidalEmbedding
from .mlp import MLPDenoiser
from .traced import TracedNetwork
from .transformer import TransformerDenoiser, TransformerDenoiserBlock
from .unet1d import ResidualBlock1D, TimeEmbedding, UNet1D
from .wavenet import WaveNetDenoiser, interpolate_frames

__all__ = ["SinusoidalEmbedding", "GaussianFourierEmbedding", "FiLM", "TimeEmbedding", "ResidualBlock1D", "UNet1D",
           "MLPDenoiser", "TransformerDenoiserBlock", "TransformerDenoiser", "WaveNetDenoiser", "interpolate_frames",
           "TracedNetwork"]
