"""DDIM inversion: the deterministic DDIM chain run from data towards noise (Song et al., 2021, "Denoising
Diffusion Implicit Models", Section 4.3 / eq. 14 read backwards; Dhariwal & Nichol, 2021, Appendix F).

It takes the same decreasing grid as ``ddim`` and walks it in reverse, so that

    latent = sample_ddim_inversion(denoiser, x, grid)      # x at grid[-1]  ->  latent at grid[0]
    x_rec  = sample_ddim(denoiser, latent, grid)           # back to grid[-1]

reconstructs x up to the discretisation error of both chains, which shrinks as the grid is refined. Each step
from s = grid[i + 1] up to t = grid[i] reuses the prediction at the current (lower-noise) point:
x_t = alpha_t x0(x_s, s) + sigma_t eps(x_s, s).

Call it directly: it is registered as a non-sampler, so ``polydiff.core.sample`` (which scales its input as prior
noise) refuses it and ``list_solvers()`` leaves it out.
"""

from __future__ import annotations

from ..sampling import check_inputs, register_solver, step_range
from .euler import table

__all__ = ["sample_ddim_inversion"]


@register_solver("ddim_inversion", sampler=False)
def sample_ddim_inversion(denoiser, x, grid, *, cond=None, generator=None, callback=None,
                          progress: bool = False):
    """Invert DDIM (eta = 0): map x at the last (least noisy) time of the decreasing ``grid`` to the latent
    at grid[0].

    x: (batch, ...) at grid[-1]; grid: (N + 1,) or (N + 1, batch) decreasing times, as for ``ddim``; it may end
    at t = 0 (x is then clean data; the model must accept t = 0). Returns the latent (batch, ...) at grid[0].
    One model call per step.
    """
    grid, (t, alpha, sigma, _) = check_inputs(denoiser, x, grid)
    cond = cond or {}
    alpha, sigma = table(alpha, x), table(sigma, x)
    for i in step_range(len(grid) - 1, progress, "ddim_inversion"):
        j = len(grid) - 1 - i  # current point; the step goes to j - 1 (more noise)
        x0, eps = denoiser.predict(x, t[j], **cond)
        x = alpha[j - 1] * x0 + sigma[j - 1] * eps
        if callback is not None:
            callback({"i": i, "x": x, "t": t[j - 1], "x0": x0})
    return x
