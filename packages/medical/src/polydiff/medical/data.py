"""Data that installs offline: dipy's bundled real dMRI and anatomy, a multi-shell phantom with ground truth built
from the real b0 anatomy, NIfTI and fastMRI-style HDF5 I/O.

Nothing here downloads: every file comes from the ``dipy`` wheel (``dipy/data/files``).

    load_dwi("small_64D")          real dMRI (data (X, Y, Z, N), bvals (N,), bvecs (N, 3), affine (4, 4))
    load_b0_slices()               real b0 anatomy, (128, 128, 10) float64 (``S0_10slices``)
    load_t1_slice()                a real T1 coronal slice, (256, 256) in [0, 1]
    three_shell_gradients(...)     b-values and unit directions from dipy's 3-shell table (b = 1000, 2000, 3500)
    make_phantom(snr, ...)         multi-tensor DWI with ground truth on the b0 anatomy, Rician noise at SNR
    read_nifti / write_nifti       arrays with affine, header and on-disk dtype kept
    read_kspace_h5                 the ``kspace`` dataset of a fastMRI-style HDF5 file
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DWI_FILES", "dipy_file", "load_dwi", "load_b0_slices", "load_t1_slice", "three_shell_gradients",
           "Phantom", "make_phantom", "brain_mask", "read_nifti", "write_nifti", "read_text_vector",
           "read_kspace_h5", "write_kspace_h5"]

DWI_FILES = {"small_64D": "small_64D.nii", "small_101D": "small_101D.nii.gz", "small_25": "small_25.nii.gz"}


def dipy_file(name: str) -> Path:
    """The path of a file bundled in the dipy wheel (``dipy/data/files/<name>``)."""
    import dipy.data

    path = Path(dipy.data.__file__).parent / "files" / name
    if not path.is_file():
        raise ValueError(f"name: dipy ships no bundled file {name!r} in {path.parent}")
    return path


def load_dwi(name: str = "small_64D") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One of dipy's bundled real dMRI scans: (data (X, Y, Z, N) float64, bvals (N,), bvecs (N, 3), affine)."""
    if name not in DWI_FILES:
        raise ValueError(f"name: expected one of {sorted(DWI_FILES)}, got {name!r}")
    image = _nibabel().load(str(dipy_file(DWI_FILES[name])))
    bvals = np.loadtxt(dipy_file(f"{name}.bval")).reshape(-1)
    bvecs = np.loadtxt(dipy_file(f"{name}.bvec"))
    bvecs = bvecs.T if bvecs.shape[0] == 3 and bvecs.shape[1] != 3 else bvecs
    return np.asarray(image.dataobj, dtype=np.float64), bvals, bvecs, image.affine


def load_b0_slices() -> np.ndarray:
    """Real b0 anatomy: dipy's ``S0_10slices`` (128, 128, 10), float64."""
    image = _nibabel().load(str(dipy_file("S0_10slices.nii.gz")))
    return np.asarray(image.dataobj, dtype=np.float64)[..., 0]


def load_t1_slice() -> np.ndarray:
    """A real T1-weighted coronal slice (256, 256) in [0, 1] (dipy's ``t1_coronal_slice``)."""
    return np.load(dipy_file("t1_coronal_slice.npy")).astype(np.float64)


def three_shell_gradients(num_b0: int = 4, per_shell: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(bvals (N,), unit bvecs (N, 3)) with ``num_b0`` b0 volumes first, then ``per_shell`` directions from each
    shell (b = 1000, 2000, 3500 s/mm^2) of dipy's ``gtab_3shell`` table (64 directions per shell, spread by taking
    every k-th). N = num_b0 + 3 per_shell (64 by default)."""
    if isinstance(num_b0, bool) or not isinstance(num_b0, int) or num_b0 < 1:
        raise ValueError(f"num_b0: expected an integer >= 1, got {num_b0!r}")
    if isinstance(per_shell, bool) or not isinstance(per_shell, int) or not 1 <= per_shell <= 64:
        raise ValueError(f"per_shell: expected an integer in [1, 64], got {per_shell!r}")
    table = np.loadtxt(dipy_file("gtab_3shell.txt"), delimiter=",")
    norms = np.linalg.norm(table, axis=1)
    bvals, bvecs = [0.0] * num_b0, [np.zeros(3)] * num_b0
    for shell in np.unique(np.round(norms[norms > 0], -2)):
        rows = np.flatnonzero(np.abs(norms - shell) < 50)
        for row in rows[:: max(1, len(rows) // per_shell)][:per_shell]:
            bvals.append(float(shell))
            bvecs.append(table[row] / norms[row])
    return np.asarray(bvals), np.stack(bvecs)


def brain_mask(b0: np.ndarray) -> np.ndarray:
    """A brain mask of a b0 volume (X, Y, Z) by dipy's median Otsu (median radius 2, one pass)."""
    from dipy.segment.mask import median_otsu

    _, mask = median_otsu(np.asarray(b0, dtype=np.float64), median_radius=2, numpass=1)
    return mask.astype(bool)


@dataclass(frozen=True)
class Phantom:
    """A noisy multi-shell DWI with its ground truth. clean, noisy: (X, Y, Z, N) float32; bvals (N,); bvecs (N, 3);
    mask (X, Y, Z) brain; sigma the Rician noise level; fractions (X, Y, Z, 3) of WM / GM / CSF."""

    clean: np.ndarray
    noisy: np.ndarray
    bvals: np.ndarray
    bvecs: np.ndarray
    mask: np.ndarray
    sigma: float
    snr: float
    fractions: np.ndarray


def _tissue_fractions(b0: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Soft WM / GM / CSF fractions from b0 intensity inside the mask (T2-weighted b0: WM < GM < CSF)."""
    inside = b0[mask]
    low, high = np.quantile(inside, [0.40, 0.85])
    width = 0.05 * (high - low) + 1e-9
    csf = 1 / (1 + np.exp(-(b0 - high) / width))
    not_wm = 1 / (1 + np.exp(-(b0 - low) / width))
    wm = 1 - not_wm
    gm = np.clip(not_wm - csf, 0, 1)
    fractions = np.stack([wm, gm, csf], axis=-1) * mask[..., None]
    return fractions / np.maximum(fractions.sum(-1, keepdims=True), 1e-12) * mask[..., None]


def _fibre_directions(shape: tuple[int, int, int]) -> np.ndarray:
    """A smooth white-matter fibre field (X, Y, Z, 3): circumferential in-plane, tilting through z."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij")
    angle = np.arctan2(y, x) + np.pi / 2
    directions = np.stack([np.cos(angle), np.sin(angle), 0.5 * z + 0.3 * x * y], axis=-1)
    return directions / np.linalg.norm(directions, axis=-1, keepdims=True)


def make_phantom(snr: float, *, seed: int = 0, gradients: tuple[np.ndarray, np.ndarray] | None = None,
                 crop: tuple[slice, slice, slice] | None = None) -> Phantom:
    """A multi-shell DWI phantom with ground truth on real anatomy.

    S0 is dipy's real b0 volume ``S0_10slices`` (128, 128, 10); each brain voxel is a mixture of white matter (a
    prolate tensor, eigenvalues 1.7 / 0.3 / 0.3 um^2/ms, along a smooth fibre field), grey matter (isotropic
    0.8 um^2/ms) and CSF (isotropic 3.0 um^2/ms) with fractions from the b0 intensity:
        S(b, g) = S0 sum_k f_k exp(-b g^T D_k g).
    Rician noise: noisy = |S + sigma (n1 + i n2)| with sigma = mean(S0 in the whole brain) / snr (a crop keeps it).

    snr: > 0 (the issue's rows: 5, 10, 20). gradients: (bvals, bvecs), default :func:`three_shell_gradients`
    (64 volumes). crop: index slices into (X, Y, Z) for a smaller phantom (tests, quick runs).
    """
    snr = float(snr)
    if not np.isfinite(snr) or snr <= 0:
        raise ValueError(f"snr: expected a finite value > 0, got {snr}")
    b0 = load_b0_slices()
    mask = brain_mask(b0)
    fractions = _tissue_fractions(b0, mask)
    fibres = _fibre_directions(b0.shape)
    sigma = float(b0[mask].mean() / snr)  # from the whole brain, so a crop has the same noise level
    if crop is not None:
        b0, mask, fractions, fibres = b0[crop], mask[crop], fractions[crop], fibres[crop]
    bvals, bvecs = three_shell_gradients() if gradients is None else gradients
    bvals, bvecs = np.asarray(bvals, dtype=np.float64), np.asarray(bvecs, dtype=np.float64)
    b = bvals / 1000.0  # ms/um^2, so diffusivities in um^2/ms
    along = np.einsum("xyzc,nc->xyzn", fibres, bvecs) ** 2
    white = np.exp(-b * (0.3 + (1.7 - 0.3) * along))
    grey, csf = np.exp(-b * 0.8), np.exp(-b * 3.0)
    attenuation = fractions[..., :1] * white + fractions[..., 1:2] * grey + fractions[..., 2:3] * csf
    clean = b0[..., None] * np.where(mask[..., None], attenuation, 1.0)
    rng = np.random.default_rng(seed)
    noisy = np.hypot(clean + sigma * rng.standard_normal(clean.shape), sigma * rng.standard_normal(clean.shape))
    return Phantom(clean.astype(np.float32), noisy.astype(np.float32), bvals, bvecs, mask, sigma, snr,
                   fractions.astype(np.float32))


# ------------------------------------------------------------------------------------------------ file I/O


def _nibabel():
    import nibabel

    return nibabel


def read_nifti(path: str | Path):
    """(data as stored, the nibabel image): data keeps the on-disk dtype (scaling applied only when the header
    has a slope/intercept, then float64)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no such file {path}")
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise ValueError(f"path: expected a .nii or .nii.gz file, got {path.name}")
    image = _nibabel().load(str(path))
    slope, intercept = image.dataobj.slope, image.dataobj.inter
    if slope in (1.0, None) and intercept in (0.0, None):
        data = np.asarray(image.dataobj)
    else:
        data = image.get_fdata()
    return data, image


def write_nifti(path: str | Path, data: np.ndarray, like=None, *, force: bool = False) -> Path:
    """Write ``data`` as NIfTI with the affine and header of ``like`` (a nibabel image, or None for identity),
    the on-disk dtype of ``like`` kept (values rounded and clipped to an integer dtype's range). Atomic: written
    to a temporary file in the same folder and renamed; an existing file is replaced only with ``force``."""
    nib = _nibabel()
    path = Path(path)
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise ValueError(f"path: expected a .nii or .nii.gz output name, got {path.name}")
    if path.exists() and not force:
        raise ValueError(f"path: {path} exists; pass force=True (--force) to overwrite it")
    data = np.asarray(data)
    if like is None:
        image = nib.Nifti1Image(data, np.eye(4))
    else:
        header = like.header.copy()
        dtype = np.dtype(header.get_data_dtype())
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            data = np.clip(np.rint(data), info.min, info.max)
        data = data.astype(dtype)
        image = nib.Nifti1Image(data, like.affine, header)
        image.set_data_dtype(dtype)
        image.header.set_slope_inter(*like.header.get_slope_inter())
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        nib.save(image, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_text_vector(path: str | Path, name: str) -> np.ndarray:
    """A whitespace-separated text file (FSL .bval / .bvec) as float64; ``name`` is the argument named in errors."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{name}: no such file {path}")
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as error:
        raise ValueError(f"{name}: {path} is not a whitespace-separated table of numbers ({error})") from None
    return values


def read_kspace_h5(path: str | Path, slice_index: int | None = None) -> np.ndarray:
    """The ``kspace`` dataset of a fastMRI-style single-coil HDF5 file: complex (slices, height, width), or one
    slice (height, width) with ``slice_index``. k-space is stored centred (fftshifted) as in fastMRI."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no such file {path}")
    with h5py.File(path, "r") as handle:
        if "kspace" not in handle:
            raise ValueError(f"path: {path} has no 'kspace' dataset (found {sorted(handle)})")
        dataset = handle["kspace"]
        if dataset.ndim != 3 or not np.issubdtype(dataset.dtype, np.complexfloating):
            raise ValueError(f"path: 'kspace' must be complex (slices, height, width), got {dataset.dtype} "
                             f"{dataset.shape}")
        if slice_index is None:
            return dataset[()]
        if not 0 <= slice_index < dataset.shape[0]:
            raise ValueError(f"slice_index: expected 0 <= slice_index < {dataset.shape[0]}, got {slice_index}")
        return dataset[slice_index]


def write_kspace_h5(path: str | Path, kspace: np.ndarray) -> Path:
    """Write complex k-space (slices, height, width) as the ``kspace`` dataset of a fastMRI-style HDF5 file."""
    import h5py

    kspace = np.asarray(kspace)
    if kspace.ndim != 3 or not np.iscomplexobj(kspace):
        raise ValueError(f"kspace: expected complex (slices, height, width), got {kspace.dtype} {kspace.shape}")
    path = Path(path)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("kspace", data=kspace.astype(np.complex64))
    return path
