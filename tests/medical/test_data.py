import nibabel as nib
import numpy as np
import pytest

from polydiff.medical.data import (
    load_b0_slices,
    load_dwi,
    load_t1_slice,
    make_phantom,
    read_kspace_h5,
    read_nifti,
    three_shell_gradients,
    write_kspace_h5,
    write_nifti,
)


def test_bundled_real_files_load():
    data, bvals, bvecs, affine = load_dwi("small_64D")
    assert data.shape == (10, 10, 10, 65) and bvals.shape == (65,) and bvecs.shape == (65, 3)
    assert affine.shape == (4, 4)
    for name in ("small_101D", "small_25"):
        data, bvals, bvecs, _ = load_dwi(name)
        assert data.shape[-1] == bvals.size == bvecs.shape[0]
    assert load_b0_slices().shape == (128, 128, 10)
    t1 = load_t1_slice()
    assert t1.shape == (256, 256) and 0 <= t1.min() and t1.max() <= 1


def test_three_shell_gradients():
    bvals, bvecs = three_shell_gradients()
    assert bvals.shape == (64,) and list(bvals[:4]) == [0, 0, 0, 0]
    assert sorted(set(bvals[4:])) == [1000, 2000, 3500] and (bvals == 2000).sum() == 20
    np.testing.assert_allclose(np.linalg.norm(bvecs[4:], axis=1), 1, rtol=1e-12)


def test_phantom_follows_the_multi_tensor_model():
    crop = (slice(40, 56), slice(40, 56), slice(4, 6))
    phantom = make_phantom(10, crop=crop)
    b0 = load_b0_slices()[crop]
    assert phantom.clean.shape == (16, 16, 2, 64) and phantom.noisy.dtype == np.float32
    # b0 volumes equal the real b0 anatomy; a b = 1000 voxel lies between pure CSF and free-of-diffusion signal
    np.testing.assert_allclose(phantom.clean[..., 0], b0.astype(np.float32), rtol=1e-6)
    inside = phantom.mask
    ratio = phantom.clean[..., 10][inside] / b0[inside]
    assert np.all(ratio >= np.exp(-1.0 * 3.0) - 1e-6) and np.all(ratio <= np.exp(-1.0 * 0.3) + 1e-6)
    np.testing.assert_allclose(phantom.fractions[inside].sum(-1), 1, rtol=1e-5)
    assert phantom.sigma == pytest.approx(load_b0_slices()[make_phantom(10).mask].mean() / 10)


def test_phantom_noise_is_rician_at_the_stated_level():
    phantom = make_phantom(5, crop=(slice(40, 88), slice(40, 88), slice(3, 7)))
    # for a high-signal voxel Rician noise is close to Gaussian of std sigma
    high = phantom.clean[..., :4] > 8 * phantom.sigma
    residual = (phantom.noisy[..., :4] - phantom.clean[..., :4])[high]
    assert residual.std() == pytest.approx(phantom.sigma, rel=0.05)


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_nifti_round_trip_keeps_affine_header_and_dtype(tmp_path, dtype):
    affine = np.diag([2.0, 2.5, 3.0, 1.0])
    affine[:3, 3] = [10, -20, 5]
    data = (np.arange(4 * 5 * 3 * 2) % 100).reshape(4, 5, 3, 2).astype(dtype)
    source = nib.Nifti1Image(data, affine)
    source.header["descrip"] = b"polydiff test"
    source.header.set_xyzt_units("mm", "sec")
    nib.save(source, tmp_path / "in.nii.gz")
    values, image = read_nifti(tmp_path / "in.nii.gz")
    assert values.dtype == dtype
    write_nifti(tmp_path / "out.nii.gz", values.astype(np.float64) + 0.4, image)
    out = nib.load(tmp_path / "out.nii.gz")
    assert out.get_data_dtype() == dtype
    np.testing.assert_array_equal(out.affine, affine)
    assert out.header["descrip"] == source.header["descrip"]
    assert out.header.get_xyzt_units() == ("mm", "sec")
    np.testing.assert_array_equal(np.asarray(out.dataobj), data if dtype != np.float32 else data + np.float32(0.4))


def test_kspace_h5_round_trip(tmp_path):
    kspace = (np.arange(2 * 4 * 6) + 1j * np.arange(48)[::-1]).reshape(2, 4, 6)
    write_kspace_h5(tmp_path / "scan.h5", kspace)
    np.testing.assert_allclose(read_kspace_h5(tmp_path / "scan.h5"), kspace)
    np.testing.assert_allclose(read_kspace_h5(tmp_path / "scan.h5", 1), kspace[1])
    with pytest.raises(ValueError, match="^slice_index"):
        read_kspace_h5(tmp_path / "scan.h5", 2)
