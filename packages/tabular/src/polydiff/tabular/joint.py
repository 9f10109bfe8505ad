"""TabDDPM's joint diffusion of a table: the training loss and the categorical chain that follows a core solver.

Training (Kotelnikov et al., 2023, sec. 3, eq. 2): loss = L_simple(numerical) + sum_c L_KL(column c) / C at one
shared training index n ~ U{0..N-1}; the Gaussian term is :func:`polydiff.core.losses.diffusion_loss` (eps target),
the multinomial term :meth:`MultinomialDiffusion.loss`.

Sampling with any core solver. The core solver sees only the numerical block through a
:class:`~polydiff.core.denoiser.Denoiser` over :class:`_JointModel`. The categorical state rides along with the
solver's own model evaluations: when the solver evaluates the network at a time t below the previous evaluation's
time t', the wrapper first moves the categorical columns from t' to t with one multinomial reverse step
x_t ~ p(x_t | x_t') built from the logits of the evaluation at t' (the posterior of
:meth:`MultinomialDiffusion.posterior` holds for any pair t < t'). After the solver returns, one last step takes the
categorical columns from the last evaluation time to clean data. With the "ddpm" solver on the full 1000-step grid
this is exactly the paper's ancestral sampler; with a 100-step grid it is the respaced chain for both parts.
"""

from __future__ import annotations

import torch
from torch import Tensor

from polydiff.core import DiscreteSchedule
from polydiff.core.discrete.multinomial import MultinomialDiffusion
from polydiff.core.losses import diffusion_loss

__all__ = ["BATCHED_TIME_SOLVERS"]

# solvers that evaluate the network at several times in one batched call: the categorical chain of _JointModel
# advances one time per call, so it cannot follow them
BATCHED_TIME_SOLVERS = ("paradigms",)


class _JointModel:
    """The network as the core Denoiser sees it: numerical block in, eps out; the categorical chain is advanced
    in step with the solver's evaluations (module docstring). Call :meth:`finish` after the solver."""

    def __init__(self, network, mult: MultinomialDiffusion | None, schedule: DiscreteSchedule, x_cat: Tensor,
                 y: Tensor | None, generator: torch.Generator):
        self.network, self.mult, self.schedule, self.y, self.generator = network, mult, schedule, y, generator
        self.x_cat, self.logits, self.t_previous = x_cat, None, None

    def _log_alpha_bar(self, t: Tensor) -> Tensor:
        return 2 * self.schedule.log_alpha(t.to(torch.float64))

    def _advance(self, t: Tensor) -> None:
        if self.mult is None or self.logits is None:
            return
        move = t < self.t_previous
        if bool(move.any()):
            stepped = self.mult.reverse_step(self.logits, self.x_cat, self._log_alpha_bar(self.t_previous),
                                             self._log_alpha_bar(t), self.generator)
            self.x_cat = torch.where(move[:, None], stepped, self.x_cat)

    def __call__(self, x_num: Tensor, t_model: Tensor) -> Tensor:
        t = (t_model.to(torch.float64).expand(x_num.shape[0]) + 1) / self.schedule.num_train_timesteps
        self._advance(t)
        inputs = x_num if self.mult is None else torch.cat([x_num, self.mult.to_onehot(self.x_cat)], 1)
        output = self.network(inputs, t_model.to(x_num.dtype).expand(x_num.shape[0]), self.y)
        d = x_num.shape[1]
        self.logits, self.t_previous = output[:, d:], t
        return output[:, :d]

    def finish(self) -> Tensor:
        """The categorical columns at clean data (batch, C)."""
        if self.mult is not None:
            self._advance(torch.zeros_like(self.t_previous))
        return self.x_cat


class _Loss:
    """loss_fn(model, batch) for the Trainer: the Gaussian eps loss + the mean per-column multinomial loss."""

    def __init__(self, schedule: DiscreteSchedule, mult: MultinomialDiffusion | None, conditional: bool):
        self.schedule, self.mult, self.conditional = schedule, mult, conditional

    def __call__(self, model, batch) -> dict:
        x_num, x_cat, y = batch
        y = y if self.conditional else None
        n = self.schedule.num_train_timesteps
        index = torch.randint(0, n, (x_num.shape[0],), device=x_num.device)
        t = (index + 1).to(torch.float64) / n
        if self.mult is not None:
            x_cat_t = self.mult.q_sample(x_cat, self.mult.log_alpha_bar(index))
            onehot = self.mult.to_onehot(x_cat_t)
        stash = {}

        def network(x_num_t, t_model):
            inputs = x_num_t if self.mult is None else torch.cat([x_num_t, onehot], 1)
            output = model(inputs, t_model, y)
            stash["logits"] = output[:, x_num.shape[1]:]
            return output[:, :x_num.shape[1]]

        zero = torch.zeros((), device=x_num.device)
        if x_num.shape[1]:
            loss_gauss = diffusion_loss(network, self.schedule, x_num, prediction="eps", t=t)
        else:
            network(x_num, self.schedule.model_input(t).to(torch.float32))
            loss_gauss = zero
        loss_multi = zero
        if self.mult is not None:
            loss_multi = self.mult.loss(stash["logits"], x_cat, x_cat_t, index).mean() / self.mult.num_columns
        return {"loss": loss_gauss + loss_multi, "loss_gauss": loss_gauss.detach(), "loss_multi": loss_multi.detach()}
