"""polydiff.medical: self-supervised dMRI denoising (DDM2-style), masked-region inpainting and k-space
reconstruction with diffusion priors, on NIfTI (nibabel), dipy and MONAI.

    from polydiff.medical import denoise_dwi, inpaint, reconstruct, SlicePrior

Heavy imports (torch networks, MONAI, dipy) are deferred to first use.
"""

from __future__ import annotations

import importlib

__all__ = ["denoise_dwi", "DenoiseConfig", "inpaint", "tumour_mask", "reconstruct", "undersample", "SlicePrior",
           "load_prior", "PriorConfig", "SliceUNet", "make_phantom", "load_dwi", "load_b0_slices", "load_t1_slice",
           "read_nifti", "write_nifti", "read_kspace_h5", "write_kspace_h5", "brats_metrics", "masked_psnr"]

_WHERE = {"denoise_dwi": "denoise", "DenoiseConfig": "denoise", "inpaint": "inpainting", "tumour_mask": "inpainting",
          "reconstruct": "recon", "undersample": "recon", "SlicePrior": "prior", "load_prior": "prior", "PriorConfig": "prior",
          "SliceUNet": "models", "make_phantom": "data", "load_dwi": "data", "load_b0_slices": "data",
          "load_t1_slice": "data", "read_nifti": "data", "write_nifti": "data", "read_kspace_h5": "data",
          "write_kspace_h5": "data", "brats_metrics": "evaluate", "masked_psnr": "evaluate"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
