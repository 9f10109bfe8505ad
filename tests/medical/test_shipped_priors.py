"""The priors that ship inside polydiff-medical: they load offline, are the kind each method needs, and the
reconstruction prior does better than the zero-filled image and CS-TV on a held-out slice."""

import nibabel as nib
import numpy as np
import pytest

from polydiff.core.cli import main
from polydiff.medical.data import write_kspace_h5
from polydiff.medical.evaluate import brats_metrics, image_metrics
from polydiff.medical.inpainting import inpaint, tumour_mask
from polydiff.medical.prior import SHIPPED, WEIGHTS, load_prior
from polydiff.medical.prior import test_slices as held_out_slices
from polydiff.medical.recon import reconstruct, undersample


@pytest.fixture(scope="module")
def held_out():
    images, brains, names = held_out_slices(slices=(6,), volumes=(0,))
    assert names == ["b0-z6-v0"]
    return images[0], brains[0]


def test_every_shipped_prior_is_in_the_package_and_is_of_its_task():
    for name, folder in SHIPPED.items():
        assert (WEIGHTS / folder / "config.json").is_file() and (WEIGHTS / folder / "model.safetensors").is_file()
        prior = load_prior(name)
        assert prior.config.task == name
        assert not any(p.requires_grad for p in prior.model.parameters())


def test_load_prior_names_the_bad_argument(tmp_path):
    with pytest.raises(ValueError, match="^name: expected a shipped prior"):
        load_prior("denoise")
    with pytest.raises(ValueError, match="^name: no saved prior"):
        load_prior(tmp_path)


def test_shipped_recon_prior_beats_zero_filled_and_cs_on_a_held_out_slice(held_out):
    # b0 slice 6 is a bench test slice: no prior has seen it. Two samples, the bench's 20 steps.
    image, _ = held_out
    kspace, lines = undersample(image, 4, seed=0)
    zero = image_metrics(reconstruct(kspace, lines, method="zero-filled"), image)["psnr"]
    cs = image_metrics(reconstruct(kspace, lines, method="cs-tv"), image)["psnr"]
    ours = image_metrics(reconstruct(kspace, lines, load_prior("recon"), method="conditional", steps=20,
                                     num_samples=2), image)["psnr"]
    assert ours > cs and ours > zero + 2.0, (ours, cs, zero)  # here 33.19 against CS 30.80, zero-filled 27.79


def test_shipped_slice_prior_fills_a_hole_and_keeps_the_rest(held_out):
    image, brain = held_out
    mask = tumour_mask(brain, 0.02, seed=3)
    filled = inpaint(image, mask, load_prior("inpaint"), steps=10, num_samples=1)
    assert np.array_equal(filled[~mask], image[~mask]) and np.isfinite(filled).all()
    # brain-like tissue, not the noise an untrained network returns: well above a random fill of the brain's range
    low, high = np.percentile(image[brain], [1, 99])
    noise = np.where(mask, np.random.default_rng(0).uniform(low, high, image.shape), image)
    ours, random = (brats_metrics(x, image, mask, brain)["psnr"] for x in (filled, noise))
    assert ours > random + 10, (ours, random)  # here 26.3 against 6.7 (an untrained network: 8.6)


def test_cli_reconstructs_and_inpaints_with_the_shipped_priors(held_out, tmp_path):
    image, brain = held_out
    kspace, lines = undersample(image, 4, seed=1)
    write_kspace_h5(tmp_path / "scan.h5", kspace[None])
    assert main(["medical", "reconstruct", str(tmp_path / "scan.h5"), "--steps", "2", "--samples", "1", "--quiet",
                 "--out", str(tmp_path / "r.nii.gz")]) == 0
    out = np.asarray(nib.load(tmp_path / "r.nii.gz").dataobj)[..., 0].astype(np.float64)
    measured = np.fft.fftshift(np.fft.fft2(out, norm="ortho"))[lines]
    np.testing.assert_allclose(measured, kspace[lines], atol=1e-3 * np.abs(kspace).max())

    mask = tumour_mask(brain, 0.02, seed=4)
    nib.save(nib.Nifti1Image(image.astype(np.float32), np.eye(4)), tmp_path / "im.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.eye(4)), tmp_path / "mask.nii.gz")
    assert main(["medical", "inpaint", str(tmp_path / "im.nii.gz"), "--mask", str(tmp_path / "mask.nii.gz"),
                 "--steps", "2", "--samples", "1", "--quiet", "--out", str(tmp_path / "o.nii.gz")]) == 0
    filled = np.asarray(nib.load(tmp_path / "o.nii.gz").dataobj)
    assert np.array_equal(filled[~mask], image.astype(np.float32)[~mask])
