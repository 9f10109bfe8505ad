"""Benchmark of the inverse-problem samplers against the exact posterior of a Gaussian mixture prior.

Prior: the core benchmark mixture (d = 16, k = 8 components, seed 0; :mod:`polydiff.core.bench.gmm`), whose exact
eps-prediction is known in closed form. Measurement: y = A x + n, n of std sigma_y = 0.05 in the range of A, for
    mask        a Mask observing 8 of the 16 coordinates,
    projection  a random projection onto 8 orthonormal directions,
    downsample  average pooling by 2 (16 -> 8); the only task where ILVR's low-pass filter phi_N applies.
The posterior is again a Gaussian mixture (Gaussian conditioning per component, with B the rows of A restricted
to its range): component k has mean m_k = mu_k + G_k (y - B mu_k), covariance S_k - G_k B S_k with
G_k = S_k B^T (B S_k B^T + sigma_y^2 I)^-1, and weight proportional to w_k N(y; B mu_k, B S_k B^T + sigma_y^2 I).
Every method draws ``n`` samples for the one y of a task; rows report the sliced Wasserstein distance to as many
exact posterior samples, and the errors of the sample mean and covariance (Frobenius) against the closed form.
Peers: a second, independent exact draw ("exact-posterior (resampled)", the Monte-Carlo noise floor) and the
measurement-only pseudo-inverse A^+ y.

Run: ``python -m polydiff.core.bench.inverse --out DIR [--quick]`` writes DIR/core-inverse.json and .md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import Tensor

from ..benchkit import versions, write_report
from ..denoiser import Denoiser
from ..grids import make_grid
from ..inverse import (
    Downsample,
    LinearOperator,
    Mask,
    Matrix,
    path_nfe,
    resampling_path,
    sample_ddnm,
    sample_ddnm_plus,
    sample_diffpir,
    sample_dps,
    sample_ilvr,
    sample_repaint,
)
from ..metrics import sliced_wasserstein
from ..schedules import VPLinearSchedule
from .gmm import GaussianMixture, eps_model, make_mixture

__all__ = ["run_inverse_bench", "MixturePosterior", "mixture_posterior", "main"]

PACKAGE = "core-inverse"
BETTER = {"swd": "min", "mean_error": "min", "cov_error": "min"}
NFES = (10, 20, 50)
SIGMA_Y = 0.05
DIM, COMPONENTS = 16, 8
JUMP = (2, 2)  # RePaint jump_length / jump_n_sample and DDNM+ travel_length / travel_repeat
# DPS's zeta, chosen on a held-out measurement (operators and y from seed 1) as the best mean error over the three
# tasks among {0.1, 0.3, 1, 3, 10} at 10 and 50 NFE
DPS_ZETA = 1.0
# DiffPIR's zeta (share of fresh noise per step), chosen the same way among {0, 0.3, 1} x lambda {1, 7} on the
# mask and projection tasks: zeta 1, lambda 1 (mean error .74 against 1.30 for zeta .3 and 1.58 for zeta 0)
DIFFPIR_ZETA = 1.0


def _mixture(seed: int = 0) -> tuple[Tensor, Tensor, Tensor, GaussianMixture]:
    """The core benchmark mixture (isotropic, ``DIM`` x ``COMPONENTS``) as weights (K,), means (K, d), covariances
    (K, d, d) and the :class:`GaussianMixture` itself (for its exact eps)."""
    mixture = make_mixture(DIM, COMPONENTS, seed)
    covariances = torch.diag_embed(mixture.variances)
    if mixture.bases is not None:
        covariances = mixture.bases @ covariances @ mixture.bases.transpose(-1, -2)
    return mixture.weights, mixture.means, covariances, mixture


class MixturePosterior:
    """The exact posterior of a Gaussian-mixture prior under y = A x + n: weights (K,), means (K, d),
    covariances (K, d, d); ``mean``, ``cov`` and ``sample(n, generator)``."""

    def __init__(self, weights: Tensor, means: Tensor, covariances: Tensor):
        self.weights, self.means, self.covariances = weights, means, covariances
        self.mean = (weights[:, None] * means).sum(0)
        second = (weights[:, None, None] * (covariances + means[:, :, None] * means[:, None, :])).sum(0)
        self.cov = second - self.mean[:, None] * self.mean[None, :]
        jitter = 1e-12 * torch.eye(means.shape[1], dtype=means.dtype)
        self._roots = torch.linalg.cholesky(0.5 * (covariances + covariances.transpose(-1, -2)) + jitter)

    def log_prob(self, x: Tensor) -> Tensor:
        """log density at x: (batch, d) -> (batch,)."""
        normals = torch.distributions.MultivariateNormal(self.means, scale_tril=self._roots)
        return torch.logsumexp(self.weights.log() + normals.log_prob(x[:, None, :]), dim=1)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return self.means[component] + (self._roots[component] @ z[:, :, None])[..., 0]


def mixture_posterior(weights: Tensor, means: Tensor, covariances: Tensor, operator: LinearOperator,
                      y: Tensor) -> MixturePosterior:
    """Condition a Gaussian mixture on one measurement y: (1, *output_shape) of a real operator acting on (d,)."""
    d = means.shape[1]
    dense = operator(torch.eye(d, dtype=torch.float64).reshape((d,) + operator.input_shape)).reshape(d, -1).T
    u, s, _ = torch.linalg.svd(dense, full_matrices=False)
    basis = u[:, s > 1e-10 * s.max()]  # the range of A, where the noise lives
    b, z = basis.T @ dense, basis.T @ y.reshape(-1).to(torch.float64)
    noise = operator.sigma_y**2 * torch.eye(b.shape[0], dtype=torch.float64)
    evidence_cov = b @ covariances @ b.T + noise  # (K, m, m)
    gain = covariances @ b.T @ torch.linalg.inv(evidence_cov)  # (K, d, m)
    residual = z - means @ b.T  # (K, m)
    post_means = means + (gain @ residual[:, :, None])[..., 0]
    post_covs = covariances - gain @ b @ covariances
    log_evidence = torch.distributions.MultivariateNormal(means @ b.T, evidence_cov).log_prob(z)
    post_weights = torch.softmax(weights.log() + log_evidence, 0)
    return MixturePosterior(post_weights, post_means, post_covs)


def _operators(seed: int) -> dict[str, LinearOperator]:
    observed = torch.zeros(DIM, dtype=torch.bool)
    observed[torch.randperm(DIM, generator=torch.Generator().manual_seed(seed))[:DIM // 2]] = True
    return {"mask": Mask(observed, SIGMA_Y), "projection": Matrix.random_projection(DIM // 2, (DIM,), seed, SIGMA_Y),
            "downsample": Downsample(2, (DIM,), sigma_y=SIGMA_Y)}


def _steps_for(nfe: int, jump_length: int, jump_n_sample: int) -> int:
    """The most grid steps whose resampling path stays within ``nfe`` denoiser calls."""
    steps = 1
    while path_nfe(resampling_path(steps + 1, jump_length, jump_n_sample)) <= nfe:
        steps += 1
    return steps


def _methods(task: str, nfe: int):
    """(name, sampler, grid steps, options, NFE used) for one task and budget."""
    travel = _steps_for(nfe, *JUMP)
    used = path_nfe(resampling_path(travel, *JUMP))
    rows = [("repaint", sample_repaint, travel, {"jump_length": JUMP[0], "jump_n_sample": JUMP[1]}, used),
            ("ddnm", sample_ddnm, nfe, {}, nfe),
            ("ddnm+", sample_ddnm_plus, nfe, {}, nfe),
            ("ddnm+ time-travel", sample_ddnm_plus, travel, {"travel_length": JUMP[0], "travel_repeat": JUMP[1]}, used),
            ("dps", sample_dps, nfe, {"zeta": DPS_ZETA}, nfe)]
    if task == "downsample":
        rows.append(("ilvr", sample_ilvr, nfe, {}, nfe))
    else:  # DiffPIR's closed-form data step with sigma_y > 0 needs A^H = A^+ (the 2x average-pool is not)
        rows.append(("diffpir", sample_diffpir, nfe, {"zeta": DIFFPIR_ZETA}, nfe))
    return rows


def _metrics(samples: Tensor, reference: Tensor, posterior: MixturePosterior, seed: int) -> dict:
    samples = samples.to(torch.float64)
    return {"swd": sliced_wasserstein(samples, reference, 256, generator=torch.Generator().manual_seed(seed)),
            "mean_error": float((samples.mean(0) - posterior.mean).norm()),
            "cov_error": float((torch.cov(samples.T) - posterior.cov).norm())}


def run_inverse_bench(out_dir=None, quick: bool = True, seed: int = 0, *, nfes=NFES,
                      num_samples: int | None = None) -> list[dict]:
    """All rows: task x method x NFE (see the module docstring). ``out_dir`` is unused (no figures) but kept for the
    common benchmark signature. quick: 1000 samples per method, else 4000 (``num_samples`` overrides)."""
    n = num_samples or (1000 if quick else 4000)
    weights, means, covariances, mixture = _mixture(0)
    schedule = VPLinearSchedule()
    denoiser = Denoiser(eps_model(mixture, schedule), schedule, "eps")
    prior = MixturePosterior(weights, means, covariances)
    rows = []
    for task_index, (task, operator) in enumerate(_operators(seed).items()):
        g = torch.Generator().manual_seed(seed * 1000 + task_index)
        x_true = prior.sample(1, g)
        y = operator.measure(x_true, g)
        posterior = mixture_posterior(weights, means, covariances, operator, y)
        reference = posterior.sample(n, g)
        for nfe in nfes:
            name = f"gmm-d{DIM}-k{COMPONENTS}/{task}/nfe{nfe}"
            top_weight = float(posterior.weights.max())  # how unimodal the exact posterior is
            peers = {"exact-posterior (resampled)": posterior.sample(n, g),
                     "measurement-only pinv": operator.pinv(y).expand(n, DIM)}
            for method, samples in peers.items():
                rows.append({"task": name, "method": method, "peer": True, "nfe": 0,
                             "posterior_max_weight": top_weight,
                             **_metrics(samples, reference, posterior, seed)})
            for method, sampler, steps, options, used in _methods(task, nfe):
                grid = make_grid(schedule, steps, "uniform", final_zero=True)
                generator = torch.Generator().manual_seed(seed * 7919 + nfe)
                x = torch.randn(n, DIM, generator=generator, dtype=torch.float64)
                start = time.perf_counter()
                samples = sampler(denoiser, x, grid, operator, y, generator=generator, **options)
                seconds = time.perf_counter() - start
                rows.append({"task": name, "method": method, "peer": False, "nfe": used, "steps": steps,
                             "seconds": seconds, **_metrics(samples, reference, posterior, seed)})
    return rows


PREAMBLE = """Zero-shot inverse-problem samplers on the exact eps of a Gaussian mixture (d = 16, k = 8, seed 0) under
y = A x + n, sigma_y = 0.05; the exact posterior is a Gaussian mixture (Gaussian conditioning per component,
weights by the component evidence). Grids: VP-linear schedule, uniform in t, ending at t = 0. RePaint and DDNM+
time-travel use jump length 2 x 2 samples, with the grid shortened so the redone steps fit the NFE budget (the
``nfe`` field of the JSON counts denoiser calls); DPS also backpropagates through the denoiser once per NFE and uses
zeta = 1 (tuned on a held-out measurement); DiffPIR uses zeta = 1, lambda = 1 (tuned the same way) on the mask and
projection tasks (its noisy data step needs A^H = A^+, which the average-pool is not). "exact-posterior (resampled)" is a second exact draw: the Monte-Carlo
noise floor of each metric. The peers' ``posterior_max_weight`` (JSON) is the largest posterior component weight:
near 1, the measurement has picked one mode of the multimodal prior, which the samplers must find from noise."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polydiff.core.bench.inverse", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for core-inverse.json and core-inverse.md")
    parser.add_argument("--quick", action="store_true", help="1000 samples per method instead of 4000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = run_inverse_bench(args.out, args.quick, args.seed)
    write_report(Path(args.out), PACKAGE, quick=args.quick, seed=args.seed, versions=versions(["torch", "polydiff-core"]),
                 better=BETTER, rows=rows, title="polydiff core: inverse-problem samplers vs the exact posterior",
                 preamble=PREAMBLE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
