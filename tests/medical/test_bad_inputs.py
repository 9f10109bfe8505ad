"""Every public entry point refuses bad input with a ValueError that names the argument."""

import numpy as np
import pytest

from polydiff.medical.data import make_phantom, read_kspace_h5, read_nifti, three_shell_gradients, write_nifti
from polydiff.medical.denoise import DenoiseConfig, denoise_dwi
from polydiff.medical.evaluate import brats_metrics
from polydiff.medical.inpainting import inpaint, tumour_mask
from polydiff.medical.prior import PriorConfig, training_set
from polydiff.medical.recon import reconstruct

DWI = np.ones((8, 8, 2, 4), dtype=np.float32)
BVALS = np.array([0, 1000, 1000, 1000.0])
NAN = DWI.copy()
NAN[0, 0, 0, 1] = np.nan
IMAGE = np.ones((16, 16))
MASK = np.zeros((16, 16), bool)
MASK[4:8, 4:8] = True
KSPACE = np.ones((16, 16), complex)
LINES = np.ones(16, bool)

CASES = [
    ("3-D data", lambda: denoise_dwi(DWI[..., 0], BVALS), "data"),
    ("5-D data", lambda: denoise_dwi(DWI[..., None], BVALS), "data"),
    ("too few volumes", lambda: denoise_dwi(DWI[..., :2], BVALS[:2]), "data"),
    ("complex data", lambda: denoise_dwi(DWI.astype(complex), BVALS), "data"),
    ("non-finite voxels", lambda: denoise_dwi(NAN, BVALS), "data"),
    ("bvals count", lambda: denoise_dwi(DWI, BVALS[:3]), "bvals"),
    ("negative bvals", lambda: denoise_dwi(DWI, -BVALS), "bvals"),
    ("mask shape", lambda: denoise_dwi(DWI, BVALS, np.ones((8, 8))), "mask"),
    ("empty mask", lambda: denoise_dwi(DWI, BVALS, np.zeros((8, 8, 2))), "mask"),
    ("config type", lambda: denoise_dwi(DWI, BVALS, config={"train_steps": 3}), "config"),
    ("train_steps", lambda: DenoiseConfig(train_steps=0), "train_steps"),
    ("crop multiple", lambda: DenoiseConfig(crop=30), "crop"),
    ("patch_radius", lambda: DenoiseConfig(patch_radius=3), "patch_radius"),
    ("max_time", lambda: DenoiseConfig(max_time=2.0), "max_time"),
    ("prior lr", lambda: PriorConfig(lr=-1.0), "lr"),
    ("prior prediction", lambda: PriorConfig(prediction="eps"), "prediction"),
    ("prior fill", lambda: PriorConfig(fill="mean"), "fill"),
    ("training slices", lambda: training_set((0, 7)), "slices"),
    ("recon num_samples", lambda: reconstruct(KSPACE, LINES, method="zero-filled", num_samples=0), "num_samples"),
    ("recon t_start", lambda: reconstruct(KSPACE, LINES, method="zero-filled", t_start=1.5), "t_start"),
    ("phantom snr", lambda: make_phantom(0), "snr"),
    ("gradients per_shell", lambda: three_shell_gradients(per_shell=100), "per_shell"),
    ("inpaint 3-D image", lambda: inpaint(np.ones((4, 4, 4)), np.ones((4, 4, 4), bool)), "image"),
    ("inpaint NaN image", lambda: inpaint(np.full((16, 16), np.nan), MASK), "image"),
    ("inpaint mask shape", lambda: inpaint(IMAGE, MASK[:8]), "mask"),
    ("inpaint empty mask", lambda: inpaint(IMAGE, np.zeros((16, 16), bool)), "mask"),
    ("inpaint full mask", lambda: inpaint(IMAGE, np.ones((16, 16), bool)), "mask"),
    ("inpaint method", lambda: inpaint(IMAGE, MASK, None, method="magic"), "method"),
    ("inpaint prior", lambda: inpaint(IMAGE, MASK, None), "prior"),
    ("tumour fraction", lambda: tumour_mask(np.ones((32, 32), bool), 0.9), "fraction"),
    ("tumour brain", lambda: tumour_mask(np.ones(32, bool), 0.05), "brain"),
    ("recon real kspace", lambda: reconstruct(np.ones((16, 16)), LINES, method="zero-filled"), "kspace"),
    ("recon NaN kspace", lambda: reconstruct(np.full((16, 16), np.nan, complex), LINES, method="zero-filled"),
     "kspace"),
    ("recon line_mask shape", lambda: reconstruct(KSPACE, LINES[:8], method="zero-filled"), "line_mask"),
    ("recon line_mask dtype", lambda: reconstruct(KSPACE, LINES.astype(int), method="zero-filled"), "line_mask"),
    ("recon method", lambda: reconstruct(KSPACE, LINES, method="magic"), "method"),
    ("recon prior", lambda: reconstruct(KSPACE, LINES, None, method="ddnm"), "prior"),
    ("brats shapes", lambda: brats_metrics(IMAGE, IMAGE, MASK[:8]), "mask"),
    ("brats empty mask", lambda: brats_metrics(IMAGE, IMAGE, np.zeros((16, 16), bool)), "mask"),
    ("nifti missing", lambda: read_nifti("no-such-file.nii.gz"), "path"),
    ("nifti extension", lambda: write_nifti("out.png", IMAGE), "path"),
    ("kspace h5 missing", lambda: read_kspace_h5("no-such-file.h5"), "path"),
]


@pytest.mark.parametrize("call, argument", [pytest.param(c, a, id=i) for i, c, a in CASES])
def test_value_error_names_the_argument(call, argument, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=rf"^{argument}\b"):
        call()


def test_write_nifti_refuses_to_overwrite_without_force(tmp_path):
    path = write_nifti(tmp_path / "a.nii.gz", IMAGE.astype(np.float32))
    with pytest.raises(ValueError, match="^path: .* exists"):
        write_nifti(path, IMAGE.astype(np.float32))
    write_nifti(path, 2 * IMAGE.astype(np.float32), force=True)
    assert read_nifti(path)[0].max() == 2


def test_read_kspace_h5_without_kspace_dataset(tmp_path):
    import h5py

    with h5py.File(tmp_path / "x.h5", "w") as handle:
        handle.create_dataset("image", data=np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="^path: .*no 'kspace'"):
        read_kspace_h5(tmp_path / "x.h5")
