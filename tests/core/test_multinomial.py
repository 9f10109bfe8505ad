"""Multinomial diffusion (Hoogeboom et al., 2021) against exact answers: Bayes' rule by brute force, the forward
marginals in closed form, and a reverse chain whose exact marginals are known."""

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from polydiff.core.discrete.multinomial import MultinomialDiffusion


def kernel(keep: float, k: int) -> np.ndarray:
    """Transition matrix M[i, j] = P(next = j | current = i) = keep 1[i = j] + (1 - keep) / K."""
    return keep * np.eye(k) + (1 - keep) / k


def test_posterior_equals_brute_force_bayes():
    num_classes = [2, 3, 5]
    diffusion = MultinomialDiffusion(num_classes)
    abar_s, abar_t = 0.7, 0.25
    # every combination of (x0, x_t) per column, batched
    rows = list(itertools.product(*[range(k) for k in num_classes], *[range(k) for k in num_classes]))
    pairs = torch.tensor(rows)
    x0, xt = pairs[:, :3], pairs[:, 3:]
    batch = len(rows)
    log_post = diffusion.posterior(diffusion.to_log_onehot(x0, torch.float64),
                                   diffusion.to_log_onehot(xt, torch.float64),
                                   torch.full((batch,), np.log(abar_t), dtype=torch.float64),
                                   torch.full((batch,), np.log(abar_s), dtype=torch.float64)).exp().numpy()
    offsets = np.concatenate([[0], np.cumsum(num_classes)[:-1]])
    for b in range(batch):
        for c, k in enumerate(num_classes):
            i, j = int(x0[b, c]), int(xt[b, c])
            # p(x_s = m | x_t = j, x_0 = i) ∝ q(x_s = m | x_0 = i) q(x_t = j | x_s = m)
            joint = kernel(abar_s, k)[i, :] * kernel(abar_t / abar_s, k)[:, j]
            np.testing.assert_allclose(log_post[b, offsets[c]:offsets[c] + k], joint / joint.sum(), atol=1e-12)


def test_forward_marginal_and_sampling_frequencies():
    diffusion = MultinomialDiffusion([4])
    x0 = torch.full((40000, 1), 2)
    abar = 0.3
    generator = torch.Generator().manual_seed(0)
    xt = diffusion.q_sample(x0, torch.full((40000,), np.log(abar), dtype=torch.float64), generator)
    expected = kernel(abar, 4)[2] * 40000
    observed = np.bincount(xt[:, 0].numpy(), minlength=4)
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_reverse_chain_with_exact_posterior_samples_known_distribution():
    """With x_0 'logits' equal to log pi, the plug-in posterior is q(x_s | x_t) for data ~ pi exactly:
    p(x_s | x_t) ∝ q(x_t | x_s) sum_i pi_i q(x_s | i). Running the chain from the uniform prior therefore
    samples the exact marginal q(x_0 step) = abar_0 pi + (1 - abar_0) / K at the first training index."""
    pis = [np.array([0.6, 0.3, 0.1]), np.array([0.05, 0.15, 0.2, 0.25, 0.35])]
    num_classes = [3, 5]
    betas = np.array([0.15, 0.3, 0.5, 0.7, 0.9, 0.99])  # ends almost uniform; index 0 still noisy
    diffusion = MultinomialDiffusion(num_classes, betas)
    batch = 30000
    generator = torch.Generator().manual_seed(1)
    logits = torch.tensor(np.log(np.concatenate(pis)), dtype=torch.float64).expand(batch, -1)
    # exact prior at the last index
    abar = np.exp(diffusion.log_alpha_bars.numpy())
    prior = np.concatenate([kernel(abar[-1], k).T @ pi for k, pi in zip(num_classes, pis, strict=True)])
    offsets = [0, 3]
    x = torch.stack([torch.multinomial(torch.tensor(prior[o:o + k]), batch, True, generator=generator)
                     for o, k in zip(offsets, num_classes, strict=True)], 1)
    for n in range(len(betas) - 1, 0, -1):
        index = torch.full((batch,), n)
        x = diffusion.reverse_step(logits, x, diffusion.log_alpha_bar(index), diffusion.log_alpha_bar(index - 1),
                                   generator)
    for c, (k, pi) in enumerate(zip(num_classes, pis, strict=True)):
        expected = (abar[0] * pi + (1 - abar[0]) / k) * batch
        observed = np.bincount(x[:, c].numpy(), minlength=k)
        assert stats.chisquare(observed, expected).pvalue > 1e-3
    # the final step to clean data samples the predicted x_0 distribution, pi itself
    x0 = diffusion.reverse_step(logits, x, diffusion.log_alpha_bar(torch.zeros(batch, dtype=torch.long)),
                                torch.zeros(batch, dtype=torch.float64), generator)
    for c, (k, pi) in enumerate(zip(num_classes, pis, strict=True)):
        assert stats.chisquare(np.bincount(x0[:, c].numpy(), minlength=k), pi * batch).pvalue > 1e-3


def test_loss_is_brute_force_kl_and_decoder_nll():
    num_classes = [3, 2]
    betas = np.array([0.1, 0.4, 0.6])
    diffusion = MultinomialDiffusion(num_classes, betas)
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    x0 = torch.tensor([[0, 1], [2, 0], [1, 1], [0, 0]])
    xt = torch.tensor([[1, 1], [2, 1], [0, 0], [0, 1]])
    index = torch.tensor([2, 1, 0, 2])
    loss = diffusion.loss(logits, x0, xt, index).numpy()
    abar = np.concatenate([[1.0], np.cumprod(1 - betas)])  # abar[n + 1] is index n
    for b in range(4):
        total = 0.0
        start = 0
        for c, k in enumerate(num_classes):
            p0 = torch.softmax(logits[b, start:start + k], 0).numpy()
            i, j, n = int(x0[b, c]), int(xt[b, c]), int(index[b])
            if n == 0:
                total += -np.log(p0[i])
            else:
                keep, prev = abar[n + 1] / abar[n], abar[n]
                q = kernel(prev, k)[i] * kernel(keep, k)[:, j]
                p = (kernel(prev, k).T @ p0) * kernel(keep, k)[:, j]
                q, p = q / q.sum(), p / p.sum()
                total += np.sum(q * np.log(q / p))
            start += k
        assert loss[b] == pytest.approx(total, rel=1e-10, abs=1e-12)


def test_wide_many_levels_stay_finite_and_sample_in_range():
    num_classes = [700, 1, 2] * 50
    diffusion = MultinomialDiffusion(num_classes, np.full(100, 0.05))
    generator = torch.Generator().manual_seed(0)
    x0 = torch.stack([torch.randint(0, k, (64,), generator=generator) for k in num_classes], 1)
    index = torch.randint(0, 100, (64,), generator=generator)
    xt = diffusion.q_sample(x0, diffusion.log_alpha_bar(index), generator)
    logits = torch.randn(64, diffusion.width, generator=generator, requires_grad=True)
    loss = diffusion.loss(logits, x0, xt, index)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()
    assert (xt >= 0).all() and (xt < torch.tensor(num_classes)).all()
    assert (diffusion.sample_prior(64, generator) < torch.tensor(num_classes)).all()
