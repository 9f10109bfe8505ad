"""Bridges and flow matching against closed-form Gaussian marginals."""

import math

import pytest
import torch

from polydiff.core import Denoiser, FlowSchedule, VPLinearSchedule
from polydiff.core.bridges import (
    BridgeDenoiser,
    BridgeLoss,
    BridgeSchedule,
    FlowMatching,
    ot_coupling,
    sample_dbim,
    sample_ddbm_heun,
)
from polydiff.core.solvers.ddim import sample_ddim

M0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
S0 = torch.tensor([0.5, 1.5], dtype=torch.float64)  # standard deviations of the data
Y = torch.tensor([3.0, 0.5], dtype=torch.float64)  # the bridge end point
N = 20000


def _bridge_setup():
    schedule = BridgeSchedule(VPLinearSchedule(beta_min=0.1, beta_max=2.1, t_min=1e-3), t_T=1.0)

    def exact_bridge_model(x_t, t_model, y):
        t = t_model.to(torch.float64)  # VP-linear model input is t itself
        b = schedule.alpha_sigma(t)[0][:, None]
        a = schedule.shift(t)[:, None]
        # gain = S0^2 b / (b^2 S0^2 + c^2) written with b / c^2 = alpha / sigma^2, finite at t = T
        alpha, sigma = (v[:, None] for v in schedule.base.alpha_sigma(t))
        gain = S0**2 * (alpha / sigma**2) / (1 + S0**2 * b * alpha / sigma**2)
        return M0 + gain * (x_t - a * y - b * M0)

    y = Y.expand(N, 2).clone()
    return schedule, BridgeDenoiser(exact_bridge_model, schedule, y), y


def _check_marginal(schedule, x, t, tolerance=0.04):
    t = torch.tensor(t, dtype=torch.float64)
    b, c = schedule.alpha_sigma(t)
    mean = schedule.shift(t) * Y + b * M0
    std = torch.sqrt(b**2 * S0**2 + c**2)
    assert torch.allclose(x.mean(0), mean, atol=tolerance * float(std.max())), (x.mean(0), mean)
    assert torch.allclose(x.std(0), std, rtol=tolerance), (x.std(0), std)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_dbim_matches_gaussian_bridge_marginals(eta):
    schedule, denoiser, y = _bridge_setup()
    grid = torch.linspace(1.0, 1e-3, 101, dtype=torch.float64)
    seen = {}

    def keep(info):
        seen[info["i"]] = info["x"] + schedule.shift(grid[info["i"] + 2]) * y

    x = sample_dbim(denoiser, y, grid, eta=eta, generator=torch.Generator().manual_seed(0), callback=keep)
    # the callback index counts DDIM steps over grid[1:], so step i ends at grid[i + 2]
    _check_marginal(schedule, seen[48], float(grid[50]))
    _check_marginal(schedule, x, float(grid[-1]))


def test_ddbm_heun_matches_gaussian_bridge_marginals():
    schedule, denoiser, y = _bridge_setup()
    grid = torch.linspace(1.0, 1e-3, 61, dtype=torch.float64)
    seen = {}
    x = sample_ddbm_heun(denoiser, y, grid, churn_step_ratio=0.33, generator=torch.Generator().manual_seed(1),
                         callback=lambda info: seen.__setitem__(info["i"], info["x"]))
    _check_marginal(schedule, seen[29], float(grid[30]), tolerance=0.05)
    _check_marginal(schedule, x, float(grid[-1]), tolerance=0.05)


def test_flow_between_two_gaussians_follows_exact_marginals():
    m1 = torch.tensor([-1.0, 0.5], dtype=torch.float64)
    s1 = torch.tensor([1.0, 0.3], dtype=torch.float64)
    schedule = FlowSchedule(t_min=1e-3, t_max=1 - 1e-3)

    def exact_velocity(x, t):
        t = t[:, None]
        mean, var = (1 - t) * M0 + t * m1, (1 - t) ** 2 * S0**2 + t**2 * s1**2
        e0 = M0 + (1 - t) * S0**2 * (x - mean) / var
        e1 = m1 + t * s1**2 * (x - mean) / var
        return e1 - e0

    denoiser = Denoiser(exact_velocity, schedule, prediction="flow")
    generator = torch.Generator().manual_seed(2)
    x1 = m1 + s1 * torch.randn(N, 2, dtype=torch.float64, generator=generator)
    grid = torch.linspace(schedule.t_max, schedule.t_min, 201, dtype=torch.float64)
    seen = {}
    x = sample_ddim(denoiser, x1, grid, callback=lambda info: seen.__setitem__(info["i"], info["x"]))
    for i, x_t in ((99, seen[99]), (199, x)):
        t = float(grid[i + 1])
        mean = (1 - t) * M0 + t * m1
        std = torch.sqrt((1 - t) ** 2 * S0**2 + t**2 * s1**2)
        assert torch.allclose(x_t.mean(0), mean, atol=0.03)
        assert torch.allclose(x_t.std(0), std, rtol=0.03)


def test_ot_coupling_is_the_optimal_permutation():
    generator = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(6, 2, generator=generator), torch.randn(6, 2, generator=generator)
    _, paired = ot_coupling(x0, x1)
    cost = (x0 - paired).pow(2).sum()
    import itertools

    best = min((x0 - x1[list(p)]).pow(2).sum() for p in itertools.permutations(range(6)))
    assert math.isclose(float(cost), float(best), rel_tol=1e-6)
    assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, x1.tolist()))


def test_flow_matching_target_is_the_path_derivative():
    loss = FlowMatching(gamma=0.5)
    x0, x1, z = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    t = torch.rand(5, dtype=torch.float64) * 0.8 + 0.1
    h = 1e-6
    x_plus, target = loss.interpolate(x0.double(), x1.double(), t + h, z.double())
    x_minus, _ = loss.interpolate(x0.double(), x1.double(), t - h, z.double())
    _, target = loss.interpolate(x0.double(), x1.double(), t, z.double())
    assert torch.allclose((x_plus - x_minus) / (2 * h), target, atol=1e-6)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="coupling"):
        FlowMatching(coupling="greedy")
    with pytest.raises(ValueError, match="x1"):
        ot_coupling(torch.zeros(3, 2), torch.zeros(4, 2))
    schedule, denoiser, y = _bridge_setup()
    with pytest.raises(ValueError, match="churn_step_ratio"):
        sample_ddbm_heun(denoiser, y, torch.linspace(1, 0.1, 5, dtype=torch.float64), churn_step_ratio=1.5)
    with pytest.raises(ValueError, match="y"):
        BridgeDenoiser(lambda *a: a[0], schedule, torch.full((3, 2), float("nan")))
    with pytest.raises(ValueError, match="weighting"):
        BridgeLoss(schedule, weighting="p2")
