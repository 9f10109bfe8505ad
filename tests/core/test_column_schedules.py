"""Per-column learnable schedules (TabDiff) and their joint sampler, against closed forms."""

import math

import pytest
import torch

from polydiff.core.column_schedules import PowerMaskingSchedule, PowerMeanSchedule, churn_time, sample_columns


def test_power_mean_ends_and_edm_formula():
    schedule = PowerMeanSchedule(3, sigma_min=0.002, sigma_max=80.0, rho=[1.0, 7.0, 3.0])
    t = torch.tensor([0.0, 0.5, 1.0])
    sigma = schedule(t).double()
    assert torch.allclose(sigma[0], torch.full((3,), 0.002, dtype=torch.float64), rtol=1e-5)
    assert torch.allclose(sigma[2], torch.full((3,), 80.0, dtype=torch.float64), rtol=1e-5)
    # rho = 1 is the straight line between the ends; rho = 7 is EDM's eq. 5 at t = 0.5
    assert sigma[1, 0].item() == pytest.approx(0.002 + 0.5 * (80 - 0.002), rel=1e-5)
    edm = (0.002 ** (1 / 7) + 0.5 * (80 ** (1 / 7) - 0.002 ** (1 / 7))) ** 7
    assert sigma[1, 1].item() == pytest.approx(edm, rel=1e-5)


def test_power_mean_derivative_matches_autograd_and_rho_gets_gradients():
    schedule = PowerMeanSchedule(2, rho=[2.0, 7.0])
    t = torch.tensor([0.3, 0.8], requires_grad=True)
    sigma = schedule(t)
    grads = [torch.autograd.grad(sigma[:, c].sum(), t, retain_graph=True)[0] for c in range(2)]
    assert torch.allclose(torch.stack(grads, 1), schedule.derivative(t.detach()), rtol=1e-4)
    schedule(torch.tensor([0.5])).sum().backward()
    assert schedule.log_rho.grad is not None and bool((schedule.log_rho.grad != 0).all())


def test_masking_schedule_closed_forms():
    schedule = PowerMaskingSchedule(2, k=[1.0, 2.0], eps=0.01)
    t = torch.tensor([0.0, 0.5, 1.0])
    alpha = schedule(t)
    assert torch.allclose(alpha[0], torch.ones(2))
    assert torch.allclose(alpha[2], torch.full((2,), 0.01))
    assert torch.allclose(alpha[1], torch.tensor([1 - 0.99 * 0.5, 1 - 0.99 * 0.25]))
    # -alpha'/(1 - alpha) = k / t, checked against autograd
    tt = torch.tensor([0.4], requires_grad=True)
    a = schedule(tt)
    d = torch.stack([torch.autograd.grad(a[0, c], tt, retain_graph=True)[0][0] for c in range(2)])
    assert torch.allclose(-d / (1 - a[0].detach()), schedule.loss_weight(tt.detach())[0], rtol=1e-5)
    assert torch.allclose(schedule.loss_weight(tt.detach())[0], torch.tensor([1 / 0.4, 2 / 0.4]))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_column_counts(bad):
    with pytest.raises(ValueError, match="num_columns"):
        PowerMeanSchedule(bad)
    with pytest.raises(ValueError, match="num_columns"):
        PowerMaskingSchedule(bad)


def test_bad_values():
    with pytest.raises(ValueError, match="rho"):
        PowerMeanSchedule(2, rho=[1.0, -1.0])
    with pytest.raises(ValueError, match="rho"):
        PowerMeanSchedule(2, rho=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="sigma_min, sigma_max"):
        PowerMeanSchedule(2, sigma_min=5.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="eps"):
        PowerMaskingSchedule(2, eps=1.0)
    with pytest.raises(ValueError, match="k"):
        PowerMaskingSchedule(2, k=0.0)
    with pytest.raises(ValueError, match="steps"):
        sample_columns(lambda x, z, t: (x, []), torch.zeros(2, 0), [], None, None, steps=0)
    for bad in (-1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="churn"):
            sample_columns(lambda x, z, t: (x, []), torch.zeros(2, 0), [], None, None, churn=bad)


def test_power_mean_inverse_undoes_the_schedule():
    schedule = PowerMeanSchedule(3, rho=[1.0, 7.0, 3.0])
    t = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    back = schedule.inverse(schedule(t).double())
    assert torch.allclose(back, t[:, None].expand(-1, 3), atol=1e-5)


def test_churn_time_raises_no_column_above_its_bound():
    schedule = PowerMeanSchedule(2, rho=[1.0, 7.0])
    t, gamma = 0.4, 0.1
    back = churn_time(t, gamma, schedule)
    now, then = (schedule(torch.tensor([v], dtype=torch.float64)).detach().double()[0] for v in (t, back))
    assert back > t and bool((then <= (1 + gamma) * now * (1 + 1e-5)).all())
    assert float((then / now).max()) == pytest.approx(1 + gamma, rel=1e-4)  # the binding column reaches it
    assert churn_time(t, 0.0, schedule) == t
    assert churn_time(1.0, gamma, schedule) == 1.0  # nowhere to go back to beyond t = 1
    assert churn_time(0.5, 0.2, None) == pytest.approx(0.6)
    assert churn_time(0.95, 0.2, None) == 0.95


# Two independent Gaussian columns N(M, S^2) and two independent categorical columns with laws PROBS: the exact
# denoiser is D(x; sigma) = M + S^2 / (S^2 + sigma^2) (x - M), and the exact x_0 law of an independent column is
# its marginal, so a sampler driven by it must return those laws (up to Monte Carlo error).
M, S = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
PROBS = [torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.25, 0.75])]


def _sample_exact(seed: int, churn: float = 0.0, rows: int = 20000) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, z) sampled on 100 steps with the exact denoiser of the independent columns above."""
    sigma = PowerMeanSchedule(2, rho=[7.0, 3.0])
    masking = PowerMaskingSchedule(2, k=[1.0, 0.5])

    def model(x, z, t):
        sig = sigma(t)
        return M + S**2 / (S**2 + sig**2) * (x - M), [p.log().expand(x.shape[0], -1) for p in PROBS]

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return sample_columns(model, torch.randn(rows, 2, generator=generator), [3, 2], sigma, masking, steps=100,
                              churn=churn, generator=generator)


def _check_categorical_laws(z: torch.Tensor) -> None:
    assert bool((z[:, 0] < 3).all()) and bool((z[:, 1] < 2).all())  # every column unmasked
    for j, p in enumerate(PROBS):
        freq = torch.bincount(z[:, j], minlength=len(p)).float() / len(z)
        assert torch.allclose(freq, p, atol=0.015)


def test_sampler_with_exact_denoiser_recovers_gaussians_and_categoricals():
    x, z = _sample_exact(1)
    # the ODE maps x_T = sigma_max eps to m + (x_T - m) s / sqrt(s^2 + sigma_max^2): the prior N(0, sigma_max^2)
    # ignores the data mean, which leaves a bias -m s / sqrt(s^2 + sigma_max^2) (0.05 for the second column)
    shrink = S / (S**2 + 80.0**2).sqrt()
    assert torch.allclose(x.mean(0), M - M * shrink, atol=4 * 2.0 / 20000**0.5)  # 4 standard errors
    assert torch.allclose(x.std(0), shrink * 80.0, rtol=0.03)
    _check_categorical_laws(z)


def test_stochastic_sampler_with_exact_denoiser_keeps_the_laws():
    """TabDiff's churn re-noises each column to sigma(t_hat) and re-masks categorical entries before every step; with
    the exact denoiser that keeps every intermediate law exact, so the laws of the deterministic test above must
    come back (the prior's mean bias, at most 0.05, may shrink, so the mean is checked to that bias)."""
    x, z = _sample_exact(2, churn=40.0)
    plain, _ = _sample_exact(2)
    shrink = S / (S**2 + 80.0**2).sqrt()
    assert torch.allclose(x.mean(0), M, atol=float((M * shrink).abs().max()) + 4 * 2.0 / 20000**0.5)
    assert torch.allclose(x.std(0), S, rtol=0.03)
    assert not torch.allclose(x, plain)  # the churn did act
    _check_categorical_laws(z)


def test_sampler_is_seeded():
    sigma = PowerMeanSchedule(1)
    masking = PowerMaskingSchedule(1)

    def model(x, z, t):
        return torch.zeros_like(x), [torch.zeros(x.shape[0], 4)]

    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(3)
        outs.append(sample_columns(model, torch.randn(50, 1, generator=g), [4], sigma, masking, steps=5,
                                   generator=g))
    assert torch.equal(outs[0][1], outs[1][1]) and torch.equal(outs[0][0], outs[1][0])
    assert math.isfinite(float(outs[0][0].abs().max()))
