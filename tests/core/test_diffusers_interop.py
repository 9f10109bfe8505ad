"""from_diffusers / SolverScheduler against diffusers itself: a randomly initialised tiny UNet2DModel and a
DDPMScheduler config give the same samples through diffusers' schedulers, polydiff's sample() and the stepwise
adapter."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from polydiff.core import Denoiser, from_diffusers, sample  # noqa: E402
from polydiff.core.diffusers_interop import SolverScheduler, diffusers_grid, schedule_from_diffusers  # noqa: E402
from polydiff.core.schedules import DiscreteSchedule  # noqa: E402

torch.set_num_threads(1)


def _unet(out_channels=3):
    torch.manual_seed(0)
    return diffusers.UNet2DModel(sample_size=8, in_channels=3, out_channels=out_channels, layers_per_block=1,
                                 block_out_channels=(8, 16), norm_num_groups=4,
                                 down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D")).eval().double()


def _config(**changes):
    return diffusers.DDPMScheduler(clip_sample=False, **changes).config


def _noise():
    # float64: a random network's x0 predictions reach ~100, where float32 rounding alone exceeds 1e-5
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _in_float64(scheduler):
    """diffusers keeps alphas_cumprod in float32 and derives its step coefficients from them in float32, which
    alone moves a sample by ~1e-7 relative (x0 predictions of a random network reach ~100 at t = 1). Holding the
    same values in float64 compares the two implementations' arithmetic, not float32 rounding; polydiff's
    schedule is built from those same values."""
    for name in ("betas", "alphas", "alphas_cumprod", "final_alpha_cumprod"):
        value = getattr(scheduler, name, None)
        if isinstance(value, torch.Tensor):
            setattr(scheduler, name, value.double())
    if hasattr(scheduler, "alpha_t"):
        scheduler.alpha_t = scheduler.alphas_cumprod.sqrt()
        scheduler.sigma_t = (1 - scheduler.alphas_cumprod).sqrt()
        scheduler.lambda_t = scheduler.alpha_t.log() - scheduler.sigma_t.log()
    return scheduler


def _diffusers_loop(scheduler, unet, noise, steps):
    scheduler.set_timesteps(steps)
    if isinstance(scheduler, diffusers.DPMSolverMultistepScheduler):
        # set_timesteps rounds its sigmas to float32; the same sigmas in float64 (see _in_float64)
        abar = scheduler.alphas_cumprod
        sigma = lambda a: ((1 - a) / a).sqrt()  # noqa: E731
        last = sigma(abar[:1]) if scheduler.config.final_sigmas_type == "sigma_min" else torch.zeros(1).double()
        scheduler.sigmas = torch.cat([sigma(abar[scheduler.timesteps]), last])
    x = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.step(unet(scheduler.scale_model_input(x, t), t).sample, t, x).prev_sample
    return x


def _adapter_loop(scheduler, unet, noise, steps):
    scheduler.set_timesteps(steps)
    x = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.step(unet(scheduler.scale_model_input(x, t), t).sample, t, x).prev_sample
    return x


CASES = [
    ("ddim", "DDIMScheduler", dict(timestep_spacing="trailing"), 10),
    ("ddim", "DDIMScheduler", dict(timestep_spacing="trailing", set_alpha_to_one=False), 5),
    ("ddim", "DDIMScheduler", dict(timestep_spacing="leading", steps_offset=1), 4),
    ("dpmpp_2m", "DPMSolverMultistepScheduler", dict(), 8),
    ("dpmpp_2m", "DPMSolverMultistepScheduler", dict(final_sigmas_type="sigma_min"), 12),
]


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("solver, scheduler_name, extra, steps", CASES)
def test_same_samples_through_diffusers_sample_and_the_adapter(solver, scheduler_name, extra, steps,
                                                               prediction_type):
    unet, noise = _unet(), _noise()
    config = _config(prediction_type=prediction_type)
    reference_scheduler = _in_float64(getattr(diffusers, scheduler_name).from_config(config, **extra))
    with torch.no_grad():
        expected = _diffusers_loop(reference_scheduler, unet, noise, steps)
        denoiser = from_diffusers(unet, config)
        grid = diffusers_grid(reference_scheduler, steps)
        through_sample = sample(denoiser, noise, solver, steps, grid=grid)
        adapter = SolverScheduler(reference_scheduler, solver=solver, grid="diffusers")
        through_adapter = _adapter_loop(adapter, unet, noise, steps)
    assert expected.abs().max() > 0.1  # a real signal, not a vanishing one
    # diffusers' DPMSolverMultistep rounds its state to float32 on every step ("upcast" in its step), so it agrees
    # to float32's relative precision (~3e-7 seen); DDIM keeps float64 and agrees to ~1e-12
    rtol = 1e-5 if scheduler_name == "DPMSolverMultistepScheduler" else 0.0
    torch.testing.assert_close(through_sample, expected, atol=1e-5, rtol=rtol)
    torch.testing.assert_close(through_adapter, expected, atol=1e-5, rtol=rtol)
    torch.testing.assert_close(through_adapter, through_sample, atol=1e-9, rtol=0)
    assert len(adapter.timesteps) == steps
    torch.testing.assert_close(adapter.timesteps, reference_scheduler.timesteps.double())


def test_the_adapter_runs_any_solver_as_sample_does():
    unet, noise, config = _unet(), _noise(), _config()
    with torch.no_grad():
        denoiser = from_diffusers(unet, config)
        # the step to t = 0 is first order: 5 two-call steps and one single call
    for solver, options, calls in (("unipc", dict(variant="bh1", order=3), 6), ("dpm_solver_2", {}, 11),
                                       ("heun", {}, 11)):
            expected = sample(denoiser, noise, solver, 6, grid="logsnr", final_zero=True, **options)
            adapter = SolverScheduler(config, solver=solver, grid="logsnr", **options)
            got = _adapter_loop(adapter, unet, noise, 6)
            assert len(adapter.timesteps) == calls, solver
            torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_stochastic_solver_through_the_adapter_follows_the_generator():
    unet, noise, config = _unet(), _noise(), _config()
    with torch.no_grad():
        expected = sample(from_diffusers(unet, config), noise, "ddim", 5, grid="trailing", final_zero=True, eta=1.0,
                          generator=torch.Generator().manual_seed(5))
        adapter = SolverScheduler(config, solver="ddim", grid="trailing", eta=1.0,
                                  generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(_adapter_loop(adapter, unet, noise, 5), expected, atol=1e-6, rtol=0)


def test_schedule_matches_the_schedulers_alphas_cumprod():
    for config in (_config(), _config(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
                   _config(beta_schedule="squaredcos_cap_v2")):
        schedule = schedule_from_diffusers(config)
        abar = diffusers.DDPMScheduler.from_config(config).alphas_cumprod.double()
        times = (torch.arange(1000, dtype=torch.float64) + 1) / 1000
        torch.testing.assert_close(schedule.alpha(times) ** 2, abar, atol=0, rtol=1e-12)
    rescaled = schedule_from_diffusers(_config(rescale_betas_zero_snr=True))
    assert isinstance(rescaled, DiscreteSchedule) and rescaled.zero_terminal_snr


def test_prediction_types_and_clipping_map_onto_the_denoiser():
    unet = _unet()
    assert from_diffusers(unet, _config()).prediction == "eps"
    assert from_diffusers(unet, _config(prediction_type="v_prediction")).prediction == "v"
    assert from_diffusers(unet, _config(prediction_type="sample")).prediction == "x0"
    clipped = from_diffusers(unet, diffusers.DDPMScheduler(clip_sample_range=2.5).config)
    assert isinstance(clipped, Denoiser) and clipped.clip_x0 == 2.5


def test_learned_variance_keeps_the_mean_half():
    unet, noise = _unet(out_channels=6), _noise()
    config = _config(variance_type="learned_range")
    with torch.no_grad():
        denoiser = from_diffusers(unet, config)
        t = torch.full((2,), 0.5, dtype=torch.float64)
        eps = denoiser.predict(noise, t).eps
        torch.testing.assert_close(eps, unet(noise, (t * 1000 - 1).float()).sample[:, :3])


def test_bad_inputs_name_the_argument():
    unet = _unet()
    with pytest.raises(ValueError, match="scheduler_or_config"):
        from_diffusers(unet, 3)
    with pytest.raises(ValueError, match="flow-matching"):
        from_diffusers(unet, {**_config(), "prediction_type": "flow_prediction"})
    with pytest.raises(ValueError, match="thresholding"):
        from_diffusers(unet, _config(thresholding=True))
    with pytest.raises(ValueError, match="solver"):
        SolverScheduler(_config(), solver="adaptive_sde")
    with pytest.raises(ValueError, match="solver"):
        SolverScheduler(_config(), solver="paradigms").set_timesteps(4)
    with pytest.raises(ValueError, match="order"):
        SolverScheduler(_config(), solver="dpmpp_2m", order=3)
    adapter = SolverScheduler(_config(), solver="dpmpp_2m")
    with pytest.raises(ValueError, match="set_timesteps"):
        adapter.step(torch.zeros(1, 3, 8, 8), 0, torch.zeros(1, 3, 8, 8))
    adapter.set_timesteps(3)
    x = _noise()
    with torch.no_grad():
        x_next = adapter.step(torch.zeros_like(x), adapter.timesteps[0], x).prev_sample
        with pytest.raises(ValueError, match="sample"):
            adapter.step(torch.zeros_like(x), adapter.timesteps[1], x_next + 1)
    adapter.set_timesteps(3)  # an abandoned run is ended and a fresh one starts
    assert adapter._run is None
    with pytest.raises(ValueError, match="Karras|karras"):
        diffusers_grid(diffusers.DPMSolverMultistepScheduler(use_karras_sigmas=True), 5)
