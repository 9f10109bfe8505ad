"""Inpainting and k-space reconstruction through core's operators: adjointness, data consistency, round trips."""

import numpy as np
import pytest
import torch

from polydiff.core.inverse import Mask, SubsampledFourier
from polydiff.medical.inpainting import inpaint, tumour_mask
from polydiff.medical.peers import cs_tv, inpaint_peer
from polydiff.medical.prior import SlicePrior
from polydiff.medical.recon import reconstruct, undersample


@pytest.mark.parametrize("acceleration", [4, 8])
def test_subsampled_fourier_is_adjoint_and_matches_undersample(acceleration):
    generator = torch.Generator().manual_seed(0)
    image = torch.rand((1, 1, 32, 32), generator=generator, dtype=torch.float64)
    kspace, lines = undersample(image[0, 0].numpy(), acceleration, seed=3)
    operator = SubsampledFourier(torch.from_numpy(np.fft.ifftshift(lines)), (1, 32, 32))
    y = torch.randn((1, 1, 32, 32), generator=generator, dtype=torch.complex128)
    y = operator.forward(operator.adjoint(y))  # a measurement in the operator's range
    left = (operator.forward(image) * y.conj()).sum().real
    right = (image * operator.adjoint(y)).sum()
    assert float(left) == pytest.approx(float(right), rel=1e-10)
    np.testing.assert_allclose(np.fft.ifftshift(kspace), operator.forward(image)[0, 0].numpy(), atol=1e-12)
    assert lines.sum() == pytest.approx(32 / acceleration, abs=2)


def test_zero_filled_is_the_inverse_fft_of_the_measured_lines():
    image = np.random.default_rng(0).uniform(size=(16, 16))
    kspace, lines = undersample(image, 4, seed=1)
    expected = np.fft.ifft2(np.fft.ifftshift(kspace), norm="ortho").real
    np.testing.assert_allclose(reconstruct(kspace, lines, method="zero-filled"), expected, atol=1e-12)
    full, all_lines = np.fft.fftshift(np.fft.fft2(image, norm="ortho")), np.ones(16, bool)
    np.testing.assert_allclose(reconstruct(full, all_lines, method="zero-filled"), image, atol=1e-12)


def test_cs_tv_beats_zero_filled_on_a_piecewise_constant_image():
    image = np.zeros((32, 32))
    image[8:24, 10:20] = 1.0
    image[12:16, 4:28] = 0.5
    kspace, lines = undersample(image, 4, seed=0)
    zero = reconstruct(kspace, lines, method="zero-filled")
    cs = reconstruct(kspace, lines, method="cs-tv", tv_weight=0.05)
    # TV removes a large part of the aliasing (measured: 41 % lower MSE); a broken iteration would not
    assert ((cs - image) ** 2).mean() < 0.7 * ((zero - image) ** 2).mean()


def test_cs_tv_with_zero_weight_keeps_the_zero_filled_solution():
    operator = SubsampledFourier.from_acceleration((1, 16, 16), 4, seed=0)
    y = operator.forward(torch.rand((1, 1, 16, 16), dtype=torch.float64))
    np.testing.assert_allclose(cs_tv(operator, y, weight=0.0, iterations=3), operator.pinv(y), atol=1e-10)


def test_mask_operator_adjoint():
    mask = torch.rand((1, 8, 8), generator=torch.Generator().manual_seed(0)) > 0.3
    operator = Mask(mask)
    x, y = torch.randn(2, 1, 8, 8, dtype=torch.float64), torch.randn(2, 1, 8, 8, dtype=torch.float64)
    assert float((operator.forward(x) * y).sum()) == pytest.approx(float((x * operator.adjoint(y)).sum()))


def test_tumour_mask_area_and_seed():
    brain = np.zeros((64, 64), bool)
    brain[8:56, 10:54] = True
    for fraction in (0.02, 0.05, 0.08):
        mask = tumour_mask(brain, fraction, seed=4)
        assert abs(mask.sum() - fraction * brain.sum()) <= 0.01 * brain.sum() and not (mask & ~brain).any()
    np.testing.assert_array_equal(tumour_mask(brain, 0.05, seed=1), tumour_mask(brain, 0.05, seed=1))
    assert not np.array_equal(tumour_mask(brain, 0.05, seed=1), tumour_mask(brain, 0.05, seed=2))


def test_harmonic_fill_reproduces_a_linear_ramp_exactly():
    rows, cols = np.indices((20, 20))
    ramp = 0.3 * rows + 0.7 * cols + 1.0  # harmonic: the discrete Laplace solution is the ramp itself
    mask = np.zeros((20, 20), bool)
    mask[5:12, 6:15] = True
    np.testing.assert_allclose(inpaint_peer("harmonic", np.where(mask, 0, ramp), mask), ramp, atol=1e-9)


@pytest.mark.parametrize("method", ["repaint", "ddnm"])
def test_inpaint_keeps_known_pixels_and_dtype(tiny_prior, method):
    image = (np.random.default_rng(0).uniform(0, 1000, (16, 16))).astype(np.int16)
    mask = np.zeros((16, 16), bool)
    mask[4:9, 5:11] = True
    out = inpaint(image, mask, tiny_prior, method=method, steps=3, jump_length=1, jump_n_sample=2)
    assert out.dtype == np.int16 and out.shape == image.shape
    np.testing.assert_array_equal(out[~mask], image[~mask])
    np.testing.assert_array_equal(out, inpaint(image, mask, tiny_prior, method=method, steps=3, jump_length=1,
                                               jump_n_sample=2))


def test_ddnm_reconstruction_is_consistent_with_the_measured_lines(tiny_prior):
    image = np.random.default_rng(0).uniform(0, 1, (16, 16))
    kspace, lines = undersample(image, 4, seed=0)
    out = reconstruct(kspace, lines, tiny_prior, method="ddnm", steps=3)
    measured = np.fft.fftshift(np.fft.fft2(out, norm="ortho")) * lines[:, None]
    np.testing.assert_allclose(measured, kspace, atol=1e-4)
    dps = reconstruct(kspace, lines, tiny_prior, method="dps", steps=2)
    assert dps.shape == image.shape and np.isfinite(dps).all()


@pytest.mark.parametrize("options", [{}, {"t_start": 0.3}, {"num_samples": 3}, {"diffpir_zeta": 0.0}])
def test_diffpir_reconstruction_keeps_the_measured_lines_exactly(tiny_prior, options):
    image = np.random.default_rng(1).uniform(0, 1, (16, 16))
    kspace, lines = undersample(image, 4, seed=1)
    out = reconstruct(kspace, lines, tiny_prior, method="diffpir", steps=3, **options)
    measured = np.fft.fftshift(np.fft.fft2(out, norm="ortho")) * lines[:, None]
    np.testing.assert_allclose(measured, kspace, atol=1e-4)
    np.testing.assert_array_equal(out, reconstruct(kspace, lines, tiny_prior, method="diffpir", steps=3, **options))


def test_training_set_never_holds_a_test_slice():
    from polydiff.medical.data import load_b0_slices
    from polydiff.medical.prior import TEST_SLICES, normalise, training_set

    images, brains = training_set()
    assert images.shape == brains.shape and images.shape[1:] == (128, 128) and len(images) > 40
    b0 = load_b0_slices()
    for z in TEST_SLICES:
        held_out = normalise(b0[:, :, z])[0]
        assert min(np.abs(images - held_out).max(axis=(1, 2))) > 0.1


def test_prior_save_load_round_trip(tiny_prior, tmp_path):
    tiny_prior.save_pretrained(tmp_path / "prior")
    loaded = SlicePrior.from_pretrained(tmp_path / "prior")
    assert loaded.config == tiny_prior.config
    assert not any(p.requires_grad for p in loaded.model.parameters())  # frozen, as the fitted prior's EMA copy
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([0.3, 0.7], dtype=torch.float64)
    with torch.no_grad():
        np.testing.assert_array_equal(tiny_prior.denoiser(x, t).numpy(), loaded.denoiser(x, t).numpy())
    with pytest.raises(ValueError, match="^directory"):
        SlicePrior.from_pretrained(tmp_path)


def test_conditional_prior_inpaints_and_doubles_as_an_unconditional_prior():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (3, 16, 16))
    brains = np.zeros((3, 16, 16), bool)
    brains[:, 2:14, 2:14] = True
    prior = SlicePrior(train_steps=2, batch_size=2, crop=16, channels=(8, 8, 8), device="cpu").fit(images, brains)
    assert prior.conditional and prior.model.cond_channels == 2
    image = rng.uniform(0, 100, (16, 16))
    mask = tumour_mask(brains[0], 0.1, seed=0)
    filled = inpaint(image, mask, prior, steps=2, num_samples=2)  # default method for a conditional prior
    assert np.array_equal(filled[~mask], image[~mask]) and np.isfinite(filled).all()
    warm = inpaint(image, mask, prior, steps=2, num_samples=2, t_start=0.4)  # SDEdit from the harmonic fill
    assert np.array_equal(warm[~mask], image[~mask]) and np.isfinite(warm).all()
    ddnm = inpaint(image, mask, prior, method="ddnm", steps=2)
    assert np.array_equal(ddnm[~mask], image[~mask])
    with pytest.raises(ValueError, match="brains"):
        SlicePrior(train_steps=1, crop=16, channels=(8, 8, 8)).fit(images, brains[:2])
    plain = SlicePrior(train_steps=1, batch_size=2, crop=16, channels=(8, 8, 8), conditional=False,
                       device="cpu").fit(images)
    with pytest.raises(ValueError, match="prior"):
        _ = plain.conditional_denoiser


def test_conditional_prior_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    prior = SlicePrior(train_steps=1, batch_size=2, crop=16, channels=(8, 8, 8), device="cpu").fit(
        rng.uniform(-1, 1, (2, 16, 16)))
    prior.save_pretrained(tmp_path / "prior")
    loaded = SlicePrior.from_pretrained(tmp_path / "prior")
    x, t = torch.randn(1, 1, 16, 16), torch.tensor([0.5])
    cond = torch.zeros(1, 2, 16, 16)
    torch.testing.assert_close(loaded.model(x, t, cond=cond), prior.model(x, t, cond=cond))


@pytest.mark.parametrize("method", ["conditional", "ddnm"])
def test_inpaint_takes_sides_that_are_not_multiples_of_the_unet(tiny_prior, method):
    image = np.random.default_rng(0).uniform(0, 100, (18, 21))
    mask = np.zeros(image.shape, bool)
    mask[6:11, 15:20] = True  # reaches into the columns the padding adds after
    filled = inpaint(image, mask, tiny_prior, method=method, steps=2)
    assert filled.shape == image.shape and np.array_equal(filled[~mask], image[~mask]) and np.isfinite(filled).all()


def test_prior_reconstruction_names_kspace_when_its_sides_do_not_fit_the_unet(tiny_prior):
    image = np.random.default_rng(0).uniform(size=(18, 18))
    kspace, lines = undersample(image, 4, seed=0)
    with pytest.raises(ValueError, match="^kspace: method 'ddnm' runs the prior's U-Net.*multiples of 4"):
        reconstruct(kspace, lines, tiny_prior, method="ddnm", steps=2)
    assert reconstruct(kspace, lines, method="cs-tv").shape == (18, 18)
