"""The core benchmark's exact pieces: the Gaussian-mixture eps model, the DOP853 PF-ODE reference, the peer loop."""

import json
import math

import pytest
import torch

from polydiff.core import Denoiser, DiscreteSchedule, make_grid
from polydiff.core.bench.gmm import GaussianMixture, eps_model, make_mixture
from polydiff.core.bench.reference import pf_ode_reference

SCHEDULE = DiscreteSchedule.linear()


def _autograd_eps(mixture, x, alpha, sigma):
    x = x.clone().requires_grad_(True)
    (score,) = torch.autograd.grad(mixture.log_prob(x, alpha, sigma).sum(), x)
    return -torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1) * score


@pytest.mark.parametrize("anisotropic", [False, True])
def test_eps_equals_minus_sigma_times_autograd_score(anisotropic):
    mixture = make_mixture(dim=5, components=4, seed=3, anisotropic=anisotropic)
    generator = torch.Generator().manual_seed(0)
    x = 2 * torch.randn(64, 5, generator=generator, dtype=torch.float64)
    t = torch.rand(64, generator=generator, dtype=torch.float64) * 0.99 + 0.005  # per-sample times
    alpha, sigma = SCHEDULE.alpha_sigma(t)
    torch.testing.assert_close(mixture.eps(x, alpha, sigma), _autograd_eps(mixture, x, alpha, sigma),
                               rtol=1e-10, atol=1e-12)
    # scalar (alpha, sigma) too, and the float32 path agrees with float64 to float32 precision
    a, s = SCHEDULE.alpha_sigma(torch.tensor(0.3, dtype=torch.float64))
    expected = _autograd_eps(mixture, x, a, s)
    torch.testing.assert_close(mixture.eps(x, a, s), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(mixture.eps(x.float(), a.float(), s.float()).double(), expected, rtol=1e-4, atol=1e-5)


def test_the_isotropic_shortcut_equals_the_general_mixture():
    """An isotropic mixture takes a (batch, dim) x (dim, K) product path; the same mixture written with identity
    bases takes the general (batch, K, dim) one: scores and log densities agree, per-sample times included."""
    from polydiff.core.bench.gmm import GaussianMixture

    mixture = make_mixture(dim=7, components=5, seed=4)
    general = GaussianMixture(mixture.weights, mixture.means, mixture.variances,
                              torch.eye(7, dtype=torch.float64).expand(5, 7, 7).clone())
    assert mixture.isotropic and not general.isotropic
    generator = torch.Generator().manual_seed(1)
    x = 2 * torch.randn(32, 7, generator=generator, dtype=torch.float64)
    for alpha, sigma in [SCHEDULE.alpha_sigma(torch.rand(32, generator=generator, dtype=torch.float64) * 0.99 + 0.005),
                         SCHEDULE.alpha_sigma(torch.tensor(0.7, dtype=torch.float64)), (1.0, 0.0)]:
        torch.testing.assert_close(mixture.score(x, alpha, sigma), general.score(x, alpha, sigma), rtol=1e-10,
                                   atol=1e-10)
        torch.testing.assert_close(mixture.log_prob(x, alpha, sigma), general.log_prob(x, alpha, sigma), rtol=1e-10,
                                   atol=1e-10)


def test_log_prob_of_a_single_gaussian_is_closed_form():
    mean, var = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64), torch.tensor([[0.2, 0.7, 1.3]])
    mixture = GaussianMixture(torch.ones(1, dtype=torch.float64), mean, var.double())
    x = torch.randn(10, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    alpha, sigma = 0.8, 0.6
    total = alpha**2 * var.double() + sigma**2
    expected = (-0.5 * ((x - alpha * mean) ** 2 / total + total.log() + math.log(2 * math.pi))).sum(1)
    torch.testing.assert_close(mixture.log_prob(x, alpha, sigma), expected, rtol=1e-12, atol=1e-12)


def test_eps_model_maps_the_training_index_to_the_schedule_time():
    """diffusers passes integer index n; the model must use alpha-bar[n] exactly (t = (n + 1) / N)."""
    mixture = make_mixture(dim=4, components=3, seed=0)
    model = eps_model(mixture, SCHEDULE)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for index in (0, 1, 499, 999):
        abar = float(SCHEDULE.alphas_cumprod[index])
        expected = mixture.eps(x, math.sqrt(abar), math.sqrt(1 - abar))
        torch.testing.assert_close(model(x, torch.tensor(index)), expected, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(model(x, torch.full((8,), float(index), dtype=torch.float64)), expected,
                                   rtol=1e-9, atol=1e-12)


def test_exact_samples_have_the_mixture_moments():
    mixture = make_mixture(dim=3, components=2, seed=5, anisotropic=True)
    samples = mixture.sample(40000, torch.Generator().manual_seed(0), alpha=0.6, sigma=0.8)
    w, mu = mixture.weights, mixture.means
    mean = 0.6 * (w[:, None] * mu).sum(0)
    cov_k = torch.einsum("kde,ke,kfe->kdf", mixture.bases, mixture.variances, mixture.bases)
    second = (w[:, None, None] * (0.36 * (cov_k + mu[:, :, None] * mu[:, None, :]))).sum(0) + 0.64 * torch.eye(3)
    cov = second - mean[:, None] * mean[None, :]
    assert (samples.mean(0) - mean).abs().max() < 5 * cov.diagonal().max().sqrt() / 200  # 5 standard errors
    torch.testing.assert_close(torch.cov(samples.T), cov, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("anisotropic", [False, True])
def test_dop853_reference_matches_the_closed_form_pf_ode_of_a_gaussian(anisotropic):
    """For N(mu, S) data the PF-ODE keeps U^T (x - alpha mu) / sqrt(alpha^2 e + sigma^2) constant (per eigen-
    direction), so x_end = alpha_e mu + U diag(std_e / std_T) U^T (x_T - alpha_T mu) exactly."""
    mixture = make_mixture(dim=4, components=1, seed=1, anisotropic=anisotropic, std_range=(0.05, 0.5))
    x_start = torch.randn(32, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t_min = SCHEDULE.t_min
    solved = pf_ode_reference(mixture, x_start, SCHEDULE, 1.0, (t_min, 0.0))
    basis = mixture.bases[0] if anisotropic else torch.eye(4, dtype=torch.float64)
    mu, e = mixture.means[0], mixture.variances[0]
    a_start, s_start = (float(v) for v in SCHEDULE.alpha_sigma(torch.tensor(1.0, dtype=torch.float64)))
    z = ((x_start - a_start * mu) @ basis) / (a_start**2 * e + s_start**2).sqrt()
    for t_end in (t_min, 0.0):
        a, s = (1.0, 0.0) if t_end == 0 else (float(v) for v in SCHEDULE.alpha_sigma(torch.tensor(t_end)))
        expected = a * mu + (z * (a**2 * e + s**2).sqrt()) @ basis.T
        torch.testing.assert_close(solved[t_end], expected, rtol=0, atol=1e-7)


def test_reference_rejects_bad_end_times():
    mixture = make_mixture(dim=2, components=1)
    with pytest.raises(ValueError, match="t_ends"):
        pf_ode_reference(mixture, torch.zeros(3, 2, dtype=torch.float64), SCHEDULE, 1.0, (1.5,))


def test_peer_loop_equals_polydiff_ddim_on_the_same_times():
    """The diffusers driver (set_timesteps / step) and the model's index mapping are right: diffusers' DDIM
    (trailing, alpha-bar = 1 at the end) equals polydiff's DDIM on the same times from the same x_T."""
    pytest.importorskip("diffusers")
    from polydiff.core.bench.peers import PeerConfig, run_peer
    from polydiff.core.solvers.ddim import sample_ddim

    mixture = make_mixture(dim=6, components=3, seed=0)
    model = eps_model(mixture, SCHEDULE)
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    config = PeerConfig("ddim", "DDIMScheduler", dict(clip_sample=False, timestep_spacing="trailing"))
    theirs, calls = run_peer(config.build(), model, x, 10)
    times = make_grid(SCHEDULE, 10, "trailing", final_zero=True)
    ours = sample_ddim(Denoiser(model, SCHEDULE), x, times)
    assert calls == 10
    torch.testing.assert_close(ours, theirs.double(), rtol=1e-5, atol=1e-5)


def test_quick_bench_writes_the_report_shape(tmp_path):
    pytest.importorskip("diffusers")
    from polydiff.core.bench import SOLVERS_BETTER as BETTER
    from polydiff.core.bench import run

    document = run(tmp_path, quick=True, seed=0,
                   argv=["--parts", "solvers", "--solvers", "ddim,dpmpp_2m", "--nfe", "5", "--batch", "64", "--calibration", "32",
                         "--repeats", "1", "--timing-batch", "64", "--fit-iterations", "3"])
    on_disk = json.loads((tmp_path / "core-solvers.json").read_text())
    assert on_disk["rows"] == document["rows"] and on_disk["better"] == BETTER
    assert "](core-error-vs-nfe.png)" in (tmp_path / "core-solvers.md").read_text()
    assert (tmp_path / "core-error-vs-nfe.png").stat().st_size > 1000
    methods = {row["method"] for row in on_disk["rows"]}
    assert {"polydiff ddim logsnr", "polydiff dpmpp_2m fitted", "diffusers DDIM trailing"} <= methods
    for row in on_disk["rows"]:
        assert row["task"] == "gmm-d16-k8/nfe5" and row["nfe"] <= 5
        assert set(BETTER) <= set(row)
    # the fitted grid was scored on the evaluation batch, the same x_T as every other row
    fitted = next(r for r in on_disk["rows"] if r["method"] == "polydiff dpmpp_2m fitted")
    assert len(fitted["grid_times"]) == fitted["steps"] + 1


def test_denoiser_evaluates_the_schedule_once_for_a_scalar_time():
    """The overhead column depends on it: a scalar t must not be evaluated on batch copies (that cost ~130 us per
    call at batch 2000), and the result must equal the per-sample evaluation exactly."""
    seen = []

    class Recording(DiscreteSchedule):
        def alpha_sigma(self, t):
            seen.append(tuple(torch.as_tensor(t).shape))
            return super().alpha_sigma(t)

    schedule = Recording(SCHEDULE.betas)
    model = eps_model(make_mixture(dim=3, components=2), schedule)
    denoiser = Denoiser(model, schedule)
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0, eps = denoiser.predict(x, torch.tensor(0.4, dtype=torch.float64))
    assert seen[0] == ()  # the denoiser's own evaluation comes first; the model then evaluates its own
    seen.clear()
    x0_batch, eps_batch = denoiser.predict(x, torch.full((50,), 0.4, dtype=torch.float64))
    assert seen[0] == (50,)
    assert torch.equal(x0, x0_batch) and torch.equal(eps, eps_batch)


def test_cli_runs_the_core_bench_with_options_after_the_package_name(tmp_path):
    """`polydiff bench core --quick --out DIR <bench options>` reaches polydiff.core.bench:run with the options."""
    from polydiff.core.cli import main

    code = main(["bench", "core", "--quick", "--out", str(tmp_path), "--parts", "solvers", "--solvers", "ddim",
                 "--nfe", "5", "--no-peers", "--batch", "32", "--calibration", "16", "--repeats", "1",
                 "--timing-batch", "32"])
    document = json.loads((tmp_path / "core-solvers.json").read_text())
    assert code == 0 and document["quick"] is True and document["options"]["batch"] == 32
    assert {row["method"] for row in document["rows"]} == {"polydiff ddim logsnr", "polydiff ddim karras",
                                                          "polydiff ddim uniform"}
