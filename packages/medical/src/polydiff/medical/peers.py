"""The tools clinicians use today, behind one interface each.

Denoising (dipy): MP-PCA (Veraart et al., 2016, ``localpca.mppca``), Patch2Self (Fadnavis et al., 2020,
``patch2self``), non-local means (Coupe et al., 2008, ``nlmeans`` with a Rician correction and the noise level
from ``estimate_sigma``). Inpainting (scikit-image): harmonic and biharmonic fill. k-space: zero-filled inverse
FFT and an iterative compressed-sensing reconstruction (FISTA with a total-variation proximal step).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DENOISE_PEERS", "denoise_peer", "INPAINT_PEERS", "inpaint_peer", "zero_filled", "cs_tv"]

DENOISE_PEERS = ("MP-PCA", "Patch2Self", "NL-means")
INPAINT_PEERS = ("harmonic", "biharmonic")


def denoise_peer(name: str, data: np.ndarray, bvals: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Denoise a DWI (X, Y, Z, N) with the dipy method ``name`` (one of :data:`DENOISE_PEERS`); float64 out."""
    data = np.asarray(data, dtype=np.float64)
    if name == "MP-PCA":
        from dipy.denoise.localpca import mppca

        return mppca(data, mask=mask, patch_radius=2, suppress_warning=True)
    if name == "Patch2Self":
        from dipy.denoise.patch2self import patch2self

        return patch2self(data, np.asarray(bvals, dtype=np.float64), model="ols", shift_intensity=True,
                          clip_negative_vals=False, b0_threshold=50)
    if name == "NL-means":
        from dipy.denoise.nlmeans import nlmeans
        from dipy.denoise.noise_estimate import estimate_sigma

        sigma = estimate_sigma(data, N=1)  # one receiver channel: Rician
        return nlmeans(data, sigma=sigma, mask=mask, patch_radius=1, block_radius=2, rician=True)
    raise ValueError(f"name: expected one of {DENOISE_PEERS}, got {name!r}")


def inpaint_peer(name: str, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill ``mask`` (True = unknown) of a 2-D image by harmonic (Laplace, biharmonic order 1) or biharmonic
    interpolation (scikit-image)."""
    image, mask = np.asarray(image, dtype=np.float64), np.asarray(mask, dtype=bool)
    if name == "biharmonic":
        from skimage.restoration import inpaint_biharmonic

        return inpaint_biharmonic(image, mask)
    if name == "harmonic":
        return _harmonic_fill(image, mask)
    raise ValueError(f"name: expected one of {INPAINT_PEERS}, got {name!r}")


def _harmonic_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Solve Laplace's equation inside ``mask`` with the known pixels as Dirichlet boundary (sparse direct)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    unknown = np.flatnonzero(mask)
    if unknown.size == 0:
        return image.copy()
    height, width = image.shape
    index = -np.ones(image.size, dtype=np.int64)
    index[unknown] = np.arange(unknown.size)
    rows, cols, vals = [], [], []
    rhs = np.zeros(unknown.size)
    r, c = np.divmod(unknown, width)
    degree = np.zeros(unknown.size)
    for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        rr, cc = r + dr, c + dc
        inside = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
        degree += inside
        neighbour = rr[inside] * width + cc[inside]
        who = np.flatnonzero(inside)
        is_unknown = index[neighbour] >= 0
        rows += [who[is_unknown]]
        cols += [index[neighbour[is_unknown]]]
        vals += [-np.ones(int(is_unknown.sum()))]
        np.add.at(rhs, who[~is_unknown], image.reshape(-1)[neighbour[~is_unknown]])
    rows.append(np.arange(unknown.size))
    cols.append(np.arange(unknown.size))
    vals.append(degree)
    matrix = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(unknown.size, unknown.size)).tocsr()
    out = image.copy().reshape(-1)
    out[unknown] = spsolve(matrix, rhs)
    return out.reshape(image.shape)


def zero_filled(operator, y):
    """The zero-filled reconstruction A^+ y (inverse FFT of the measured lines, real part)."""
    return operator.pinv(y)


def cs_tv(operator, y, *, weight: float = 0.01, iterations: int = 60):
    """Compressed sensing: min_x 0.5 ||A x - y||^2 + weight TV(x) by FISTA (Beck & Teboulle, 2009) with
    scikit-image's Chambolle TV denoiser as the proximal step (step size 1: A is a partial isometry).
    y: (batch, H, W) complex measurement of :class:`polydiff.core.inverse.SubsampledFourier`; returns (batch, H, W)."""
    import torch
    from skimage.restoration import denoise_tv_chambolle

    if not weight >= 0:
        raise ValueError(f"weight: expected a TV weight >= 0, got {weight}")

    def prox(image):
        return denoise_tv_chambolle(image, weight=weight) if weight > 0 else image

    x = operator.pinv(y)
    z, momentum = x.clone(), 1.0
    for _ in range(iterations):
        gradient_step = z - operator.adjoint(operator.forward(z) - y)
        x_next = torch.from_numpy(np.stack([prox(image.numpy())
                                            for image in gradient_step.reshape(-1, *gradient_step.shape[-2:])])
                                  .reshape(gradient_step.shape)).to(gradient_step.dtype)
        momentum_next = (1 + (1 + 4 * momentum**2) ** 0.5) / 2
        z = x_next + (momentum - 1) / momentum_next * (x_next - x)
        x, momentum = x_next, momentum_next
    return x
