"""Inverse problems with a pretrained diffusion prior: linear measurement operators and zero-shot posterior
samplers (RePaint, ILVR, DDNM, DDNM+, DPS, DiffPIR) running over any core time grid."""

from .common import path_nfe, resampling_path
from .diffpir import diffpir_rho, sample_diffpir
from .methods import (
    INVERSE_METHODS,
    sample_ddnm,
    sample_ddnm_plus,
    sample_dps,
    sample_ilvr,
    sample_repaint,
)
from .operators import Downsample, LinearOperator, Mask, Matrix, SubsampledFourier, fourier_line_mask

__all__ = ["LinearOperator", "Mask", "Downsample", "SubsampledFourier", "Matrix", "fourier_line_mask",
           "resampling_path", "path_nfe", "sample_repaint", "sample_ilvr", "sample_ddnm", "sample_ddnm_plus",
           "sample_dps", "sample_diffpir", "diffpir_rho", "INVERSE_METHODS"]
