"""Discrete-state diffusion (polydiff.core.discrete): D3PM, MDLM, DDPD against exact answers by enumeration.

Oracles are computed by enumerating every sequence of a small data law (a categorical, a handful of sequences,
2- and 3-state Markov chains over length-4 sequences). Sampling tests use a chi-square goodness-of-fit test over
the whole sequence space with a fixed seed and require p > 1e-3.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from polydiff.core.discrete import (
    D3PM,
    MaskingSchedule,
    d3pm_betas,
    ddpd_corrupt,
    ddpd_denoiser_loss,
    ddpd_planner_loss,
    ddpd_sample,
    mdlm_nelbo,
    mdlm_sample,
    mdlm_sample_first_hitting,
    subs_log_probs,
)

torch.set_num_threads(1)

CHI2_LEVEL = 1e-3  # reject the sampler when the chi-square p-value falls below this


# ------------------------------------------------------------------------------------------- helpers


def all_sequences(num_classes: int, length: int) -> torch.Tensor:
    """(num_classes ** length, length) long, in the order of ``sequence_index``."""
    return torch.tensor(list(itertools.product(range(num_classes), repeat=length)), dtype=torch.long)


def sequence_index(x: torch.Tensor, num_classes: int) -> torch.Tensor:
    weights = num_classes ** torch.arange(x.shape[-1] - 1, -1, -1)
    return (x * weights).sum(-1)


def markov_law(num_classes: int, length: int, init, transition) -> tuple[torch.Tensor, torch.Tensor]:
    seqs = all_sequences(num_classes, length)
    init, transition = np.asarray(init), np.asarray(transition)
    probs = [init[s[0]] * np.prod([transition[a, b] for a, b in zip(s[:-1], s[1:], strict=True)]) for s in seqs.tolist()]
    return seqs, torch.tensor(probs, dtype=torch.float64)


CHAIN2 = ([0.6, 0.4], [[0.7, 0.3], [0.4, 0.6]])
CHAIN3 = ([0.5, 0.3, 0.2], [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4]])


def chi_square_pvalue(samples: torch.Tensor, seqs: torch.Tensor, probs: torch.Tensor, num_classes: int) -> float:
    counts = torch.bincount(sequence_index(samples, num_classes), minlength=num_classes ** seqs.shape[1])
    counts = counts[sequence_index(seqs, num_classes)].double().numpy()
    expected = probs.numpy() * counts.sum()
    assert expected.min() >= 5, "chi-square needs every expected count >= 5"
    return float(stats.chisquare(counts, expected).pvalue)


def table_model(num_classes_total: int, length: int, table_at):
    """A model over (batch, length) tokens that looks up ``table_at(key) -> (num_states, length, K) logits``,
    where the states are all num_classes_total ** length sequences; key is the time argument's first entry."""
    cache = {}

    def model(x, t):
        key = float(t.reshape(-1)[0])
        if key not in cache:
            cache[key] = table_at(t.reshape(-1)[0])
        return cache[key][sequence_index(x, num_classes_total)]

    return model


# ----------------------------------------------------------------------------- independent D3PM matrices


def reference_matrix(kind: str, beta: float, k: int, mask: int | None) -> np.ndarray:
    """Austin et al. (2021) Appendix A.2, written element by element."""
    q = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            if kind == "uniform":
                q[i, j] = beta / k + (1 - beta) * (i == j)
            elif kind == "absorbing":
                q[i, j] = (1 - beta) * (i == j) + beta * (j == mask)
            else:
                norm = sum(math.exp(-4 * n * n / ((k - 1) ** 2 * beta)) for n in range(-(k - 1), k))
                q[i, j] = math.exp(-4 * (i - j) ** 2 / ((k - 1) ** 2 * beta)) / norm
    if kind == "gaussian":
        for i in range(k):
            q[i, i] = 1 - sum(q[i, j] for j in range(k) if j != i)
    return q


@pytest.mark.parametrize("kind", ["uniform", "absorbing", "gaussian"])
@pytest.mark.parametrize("k", [3, 4, 5])
def test_posterior_matches_bayes_by_path_enumeration(kind, k):
    rng = np.random.default_rng(k)
    num_steps = 4
    betas = rng.uniform(0.05, 0.6, num_steps)
    mask = k - 1 if kind == "absorbing" else None
    process = D3PM(kind, k, betas=betas)
    mats = [reference_matrix(kind, b, k, mask) for b in betas]
    assert np.allclose(process.q_one_step[1:].numpy(), np.stack(mats), atol=1e-14)
    x0_values = range(k - 1) if kind == "absorbing" else range(k)
    for t in range(1, num_steps + 1):
        for x0 in x0_values:
            # joint law of (x_{t-1}, x_t) given x_0 by summing the chain over every path x_1 .. x_{t-2}
            joint = np.zeros((k, k))
            for path in itertools.product(range(k), repeat=t):
                prob, previous = 1.0, x0
                for step, state in enumerate(path):
                    prob *= mats[step][previous, state]
                    previous = state
                before = path[-2] if t >= 2 else x0
                joint[before, path[-1]] += prob
            marginal_t = joint.sum(0)
            x0_tensor = torch.full((k,), x0)
            q_t = process.q_probs(x0_tensor[:1], torch.tensor([t]))[0].numpy()
            assert np.allclose(q_t, marginal_t, atol=1e-13)
            posterior = process.q_posterior_probs(x0_tensor, torch.arange(k), torch.full((k,), t)).numpy()
            for x_t in range(k):
                if marginal_t[x_t] > 0:
                    assert np.allclose(posterior[x_t], joint[:, x_t] / marginal_t[x_t], atol=1e-12)
                else:
                    assert np.all(posterior[x_t] == 0)


def test_d3pm_schedules():
    # jsd: beta_t = 1 / (T - t + 1), so the absorbing chain keeps a token unmasked with probability 1 - t / T
    process = D3PM("absorbing", 4, 8)
    keep = process.q_cumulative[:, 0, 0].numpy()
    assert np.allclose(keep, 1 - np.arange(9) / 8, atol=1e-14)
    cosine = d3pm_betas("cosine", 10)
    steps = np.arange(11) / 10
    alpha_bar = np.cos((steps + 0.008) / 1.008 * np.pi / 2)
    assert np.allclose(np.cumprod(1 - cosine)[:-1], (alpha_bar[1:] / alpha_bar[0])[:-1], rtol=1e-12)
    assert np.allclose(d3pm_betas("linear", 5), np.linspace(0.02, 1.0, 5))
    # doubly stochastic gaussian matrices mix to the uniform prior
    assert torch.allclose(D3PM("gaussian", 5, 100).q_cumulative[-1], torch.full((5, 5), 0.2, dtype=torch.float64),
                          atol=1e-7)


# -------------------------------------------------------------------------------- D3PM ELBO by enumeration


def d3pm_oracle_table(process: D3PM, seqs: torch.Tensor, probs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-position marginals of the true q(x_0 | x_t) as logits, for every state x_t: (K^L, L, K)."""
    k, length = process.num_classes, seqs.shape[1]
    states = all_sequences(k, length)
    qbar = process.q_cumulative[int(t)]
    log_lik = qbar[seqs[None, :, :], states[:, None, :]].log().sum(-1)  # (states, seqs)
    weights = torch.softmax(log_lik + probs.log()[None], -1)
    weights = torch.nan_to_num(weights, nan=0.0)  # states unreachable from every sequence
    marginals = torch.einsum("as,slk->alk", weights, torch.nn.functional.one_hot(seqs, k).double())
    marginals = torch.where(marginals.sum(-1, keepdim=True) > 0, marginals, 1.0 / k)
    return marginals.log()


def exact_vb_and_nll(process: D3PM, model, x0: torch.Tensor):
    """(E_q[L_vb(x0)], -log p_theta(x0), KL(q(x_{1:T} | x0) || p_theta(x_{1:T} | x0))), all by enumeration over
    the sequence states, for a model whose reverse kernel is process.model_probs."""
    k, length, num_steps = process.num_classes, x0.shape[0], process.num_steps
    states = all_sequences(k, length)
    n = states.shape[0]
    # forward kernels over sequences
    forward = [torch.prod(process.q_one_step[t][states[:, None, :], states[None, :, :]], -1)
               for t in range(1, num_steps + 1)]
    q_prev = torch.zeros(n, dtype=torch.float64)
    q_prev[sequence_index(x0, k)] = 1.0
    expected_vb = process.prior_kl(x0[None]).sum().item()
    reverse = []
    for t in range(1, num_steps + 1):
        tt = torch.full((n,), t)
        probs_t = q_prev @ forward[t - 1]  # q(x_t | x_0)
        logits = model(states, tt)
        vb, _ = process.loss_terms(logits[probs_t > 0], x0.expand(int((probs_t > 0).sum()), -1),
                                   states[probs_t > 0], tt[probs_t > 0])
        expected_vb += float((probs_t[probs_t > 0] * vb.sum(-1)).sum())
        per_token = process.model_probs(logits, states, tt)  # (n, L, K)
        reverse.append(torch.prod(per_token[:, torch.arange(length)[None, :], states], -1))  # (x_t, x_{t-1})
        q_prev = probs_t
    prior = torch.prod(process.prior[states], -1)
    # every path x_1 .. x_T (path[t - 1] = x_t): q(x_{1:T} | x_0) and p_theta(x_{0:T}) with x_0 fixed
    x0_index = int(sequence_index(x0, k))
    entries, total_p_x0 = [], 0.0
    for path in itertools.product(range(n), repeat=num_steps):
        q_path, previous = 1.0, x0_index
        for t, state in enumerate(path, start=1):
            q_path *= float(forward[t - 1][previous, state])
            previous = state
        p_path = float(prior[path[-1]])
        for t in range(num_steps, 1, -1):
            p_path *= float(reverse[t - 1][path[t - 1], path[t - 2]])
        p_path *= float(reverse[0][path[0], x0_index])
        total_p_x0 += p_path
        if q_path > 0:
            entries.append((q_path, p_path))
    kl = sum(q_path * (math.log(q_path) - math.log(p_path / total_p_x0)) for q_path, p_path in entries)
    return expected_vb, -math.log(total_p_x0), kl


@pytest.mark.parametrize("kind", ["uniform", "absorbing", "gaussian"])
def test_elbo_exact_model_single_token_is_tight(kind):
    k, num_steps = 4, 3
    betas = {"uniform": [0.3, 0.5, 1.0], "absorbing": None, "gaussian": [0.4, 0.8, 1.0]}[kind]
    process = D3PM(kind, k, num_steps, betas=betas)
    data_classes = k - 1 if kind == "absorbing" else k
    probs = torch.tensor([0.45, 0.3, 0.15, 0.1][:data_classes], dtype=torch.float64)
    probs = probs / probs.sum()
    seqs = torch.arange(data_classes)[:, None]
    model = table_model(k, 1, lambda t: d3pm_oracle_table(process, seqs, probs, t))
    # the exact model's reverse kernel equals the true reverse q(x_{t-1} | x_t) (Bayes, by enumeration)
    marginal = torch.zeros(k, dtype=torch.float64)
    marginal[:data_classes] = probs
    for t in range(1, num_steps + 1):
        q_t = process.q_one_step[t]
        true_reverse = (marginal[:, None] * q_t) / (marginal @ q_t)[None, :]  # [x_{t-1}, x_t]
        states = torch.arange(k)[:, None]
        reachable = (marginal @ q_t) > 0
        got = process.model_probs(model(states, torch.full((k,), t)), states, torch.full((k,), t))[:, 0]
        assert torch.allclose(got[reachable], true_reverse.T[reachable], atol=1e-12)
        marginal = marginal @ q_t
    for value in range(data_classes):
        vb, nll, slack = exact_vb_and_nll(process, model, torch.tensor([value]))
        # uniform/gaussian: beta_T = 1 / absorbing jsd make q(x_T | x_0) the prior only for uniform and absorbing
        assert vb == pytest.approx(nll + slack, abs=1e-9)
        if kind != "gaussian":
            assert slack == pytest.approx(0.0, abs=1e-9)
            assert vb == pytest.approx(-math.log(float(probs[value])), abs=1e-6)


@pytest.mark.parametrize("kind", ["uniform", "absorbing"])
def test_nll_bound_estimate_of_exact_model(kind):
    """D3PM.nll_bound (one x_t per t) averages to the exact E[L_vb] = -log p(x0) of the tight single-token case:
    within 4 standard errors over 40000 draws."""
    k, num_steps = 4, 3
    process = D3PM(kind, k, num_steps, betas=[0.3, 0.5, 1.0] if kind == "uniform" else None)
    data_classes = k - 1 if kind == "absorbing" else k
    probs = torch.tensor([0.45, 0.3, 0.15, 0.1][:data_classes], dtype=torch.float64)
    probs = probs / probs.sum()
    model = table_model(k, 1, lambda t: d3pm_oracle_table(process, torch.arange(data_classes)[:, None], probs, t))
    generator = torch.Generator().manual_seed(9)
    for value in range(data_classes):
        draws = process.nll_bound(model, torch.full((40000, 1), value), generator=generator)
        standard_error = draws.std().item() / math.sqrt(draws.numel())
        assert abs(draws.mean().item() + math.log(float(probs[value]))) < 4 * standard_error + 1e-9


@pytest.mark.parametrize("kind", ["uniform", "absorbing", "gaussian"])
@pytest.mark.parametrize("form", ["marginal", "austin"])
def test_elbo_decomposition_on_sequences(kind, form):
    """L_vb = -log p_theta(x0) + KL(q(x_{1:T} | x0) || p_theta(x_{1:T} | x0)) exactly, for the factorised oracle
    over a handful of length-2 sequences (and for Austin's eq. 4 weighting too)."""
    k, num_steps = 3, 3
    process = D3PM(kind, k, num_steps, betas=[0.3, 0.6, 1.0] if kind != "absorbing" else None, reverse_form=form)
    if kind == "absorbing":
        seqs = torch.tensor([[0, 1], [1, 1], [1, 0]])
    else:
        seqs = torch.tensor([[0, 1], [1, 2], [2, 2], [2, 0]])
    probs = torch.tensor([0.4, 0.3, 0.2, 0.1][: seqs.shape[0]], dtype=torch.float64)
    probs = probs / probs.sum()
    model = table_model(k, 2, lambda t: d3pm_oracle_table(process, seqs, probs, t))
    for x0 in seqs:
        vb, nll, slack = exact_vb_and_nll(process, model, x0)
        assert slack >= -1e-12
        assert vb == pytest.approx(nll + slack, abs=1e-6)


# ------------------------------------------------------------------------------------------ D3PM sampling


def exact_output_law(process: D3PM, model, k: int, length: int) -> torch.Tensor:
    """The exact law of ``process.sample`` output over all K^L sequences (factorised reverse kernels)."""
    states = all_sequences(k, length)
    law = torch.prod(process.prior[states], -1)
    for t in range(process.num_steps, 0, -1):
        tt = torch.full((states.shape[0],), t)
        per_token = process.model_probs(model(states, tt), states, tt)  # (from, L, K)
        kernel = torch.prod(per_token[:, torch.arange(length)[None, :], states], -1)  # (from, to)
        law = law @ kernel
    return law


@pytest.mark.parametrize("kind,num_steps", [("uniform", 20), ("absorbing", 20), ("gaussian", 50)])
def test_d3pm_sampler_single_token_categorical(kind, num_steps):
    k = 5
    process = D3PM(kind, k, num_steps)
    data_classes = k - 1 if kind == "absorbing" else k
    probs = torch.tensor([0.35, 0.25, 0.2, 0.12, 0.08][:data_classes], dtype=torch.float64)
    probs = probs / probs.sum()
    seqs = torch.arange(data_classes)[:, None]
    model = table_model(k, 1, lambda t: d3pm_oracle_table(process, seqs, probs, t))
    law = exact_output_law(process, model, k, 1)[:data_classes]
    assert torch.allclose(law, probs, atol=2e-5 if kind == "gaussian" else 1e-12)
    samples = process.sample(model, (20000, 1), generator=torch.Generator().manual_seed(0))
    assert chi_square_pvalue(samples, seqs, probs, k) > CHI2_LEVEL


@pytest.mark.parametrize("chain", [CHAIN2, CHAIN3], ids=["2-state", "3-state"])
def test_d3pm_sampler_markov_chain(chain):
    """Absorbing D3PM with the factorised oracle on length-4 Markov-chain sequences. The factorised reverse is
    only approximate when two tokens unmask in one step, an O(1 / T) error: the exact output law (by enumeration)
    must be within total variation 0.005 of the target at T = 100 (measured 0.0021 / 0.0032 for 2 / 3 states),
    the error must halve from T = 50 to T = 100, and 20000 samples at T = 100 must pass the chi-square test."""
    classes, length = len(chain[0]), 4
    k = classes + 1
    seqs, probs = markov_law(classes, length, *chain)
    distances = {}
    for num_steps in (50, 100):
        process = D3PM("absorbing", k, num_steps)
        model = table_model(k, length, lambda t, process=process: d3pm_oracle_table(process, seqs, probs, t))
        law = exact_output_law(process, model, k, length)[sequence_index(seqs, k)]
        distances[num_steps] = 0.5 * float((law - probs).abs().sum())
    assert distances[100] < 0.005
    assert 1.8 < distances[50] / distances[100] < 2.2
    samples = process.sample(model, (20000, length), generator=torch.Generator().manual_seed(1))
    assert int((samples == classes).sum()) == 0
    assert chi_square_pvalue(samples, seqs, probs, k) > CHI2_LEVEL


def test_d3pm_hybrid_loss_is_finite_and_differentiable():
    process = D3PM("uniform", 6, 50)
    x0 = torch.randint(0, 6, (8, 3, 2), generator=torch.Generator().manual_seed(0))
    weights = torch.zeros(6, requires_grad=True)
    model = lambda x_t, t: weights.expand(*x_t.shape, 6) + 30.0 * torch.nn.functional.one_hot(x_t, 6)  # noqa: E731
    loss = process.loss(model, x0, generator=torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(weights.grad).all()
    # a confident wrong prediction gives a large but finite loss, never NaN
    bad = lambda x_t, t: -1e4 * torch.nn.functional.one_hot(x0, 6).float()  # noqa: E731
    assert torch.isfinite(process.loss(bad, x0, t=torch.full((8,), 1)))
    assert torch.isfinite(process.loss(bad, x0, t=torch.full((8,), 30)))


@given(st.sampled_from(["uniform", "absorbing", "gaussian"]), st.integers(2, 7),
       st.lists(st.integers(1, 3), min_size=1, max_size=3), st.integers(0, 2**16))
def test_d3pm_shapes_and_normalisation(kind, k, trailing, seed):
    process = D3PM(kind, k, 10)
    generator = torch.Generator().manual_seed(seed)
    data_classes = k - 1 if kind == "absorbing" else k
    shape = (3, *trailing)
    x0 = torch.randint(0, data_classes, shape, generator=generator)
    t = torch.randint(1, 11, (3,), generator=generator)
    x_t = process.q_sample(x0, t, generator)
    assert x_t.shape == x0.shape and x_t.dtype == torch.long
    logits = torch.randn((*shape, k), generator=generator)
    probs = process.model_probs(logits, x_t, t)
    assert probs.shape == (*shape, k)
    assert torch.allclose(probs.sum(-1), torch.ones(shape, dtype=torch.float64), atol=1e-12)
    vb, ce = process.loss_terms(logits, x0, x_t, t)
    assert vb.shape == shape and ce.shape == shape and bool((vb >= -1e-12).all())


# -------------------------------------------------------------------------------------------------- MDLM


def masked_oracle_table(seqs: torch.Tensor, probs: torch.Tensor, mask: int) -> torch.Tensor:
    """Logits of the true p(x^l | visible tokens of z) at every position, for every z in {0..mask}^L."""
    k, length = mask + 1, seqs.shape[1]
    states = all_sequences(k, length)
    agree = (states[:, None, :] == seqs[None, :, :]) | (states[:, None, :] == mask)
    weights = probs[None, :] * agree.all(-1)  # (states, seqs)
    marginals = torch.einsum("as,slk->alk", weights, torch.nn.functional.one_hot(seqs, k).double())
    marginals = torch.where(marginals.sum(-1, keepdim=True) > 0, marginals, 1.0)
    return (marginals / marginals.sum(-1, keepdim=True)).log()


@pytest.mark.parametrize("chain", [CHAIN2, CHAIN3], ids=["2-state", "3-state"])
def test_mdlm_first_hitting_sampler_is_exact(chain):
    classes, length = len(chain[0]), 4
    seqs, probs = markov_law(classes, length, *chain)
    table = masked_oracle_table(seqs, probs, classes)
    model = lambda z, t: table[sequence_index(z, classes + 1)]  # noqa: E731
    for kind in ("loglinear", "cosine"):
        samples = mdlm_sample_first_hitting(model, (20000, length), MaskingSchedule(kind), classes + 1, classes,
                                            generator=torch.Generator().manual_seed(2))
        assert chi_square_pvalue(samples, seqs, probs, classes + 1) > CHI2_LEVEL


@pytest.mark.parametrize("kind", ["loglinear", "cosine"])
def test_mdlm_ancestral_sampler_markov_chain(kind):
    """Ancestral MDLM with 128 steps; simultaneous unmasking of two of the four tokens (the only source of bias
    with the exact conditionals) happens in about 6 / 128 of samples, too rarely for 20000 samples to see."""
    classes, length = 3, 4
    seqs, probs = markov_law(classes, length, *CHAIN3)
    table = masked_oracle_table(seqs, probs, classes)
    model = lambda z, t: table[sequence_index(z, classes + 1)]  # noqa: E731
    samples = mdlm_sample(model, (20000, length), MaskingSchedule(kind), classes + 1, classes, num_steps=128,
                          generator=torch.Generator().manual_seed(3))
    assert int((samples == classes).sum()) == 0
    assert chi_square_pvalue(samples, seqs, probs, classes + 1) > CHI2_LEVEL


def test_mdlm_ancestral_custom_grid():
    """The one-step grid [1, 0] unmasks every token at once from p(x^l | all masked): exact per-position
    marginals. An uneven grid (denser near t = 0) still samples the joint law."""
    classes, length = 3, 4
    seqs, probs = markov_law(classes, length, *CHAIN3)
    table = masked_oracle_table(seqs, probs, classes)
    model = lambda z, t: table[sequence_index(z, classes + 1)]  # noqa: E731
    schedule = MaskingSchedule("loglinear")
    samples = mdlm_sample(model, (20000, length), schedule, classes + 1, classes, times=[1.0, 0.0],
                          generator=torch.Generator().manual_seed(10))
    for position in range(length):
        marginal = torch.zeros(classes, dtype=torch.float64).index_add_(0, seqs[:, position], probs)
        counts = torch.bincount(samples[:, position], minlength=classes).numpy()
        assert stats.chisquare(counts, marginal.numpy() * counts.sum()).pvalue > CHI2_LEVEL
    grid = torch.linspace(1, 0, 129, dtype=torch.float64) ** 2
    samples = mdlm_sample(model, (20000, length), schedule, classes + 1, classes, times=grid,
                          generator=torch.Generator().manual_seed(11))
    assert chi_square_pvalue(samples, seqs, probs, classes + 1) > CHI2_LEVEL
    with pytest.raises(ValueError, match="times"):
        mdlm_sample(model, (2, length), schedule, classes + 1, classes, times=[0.0, 1.0])


@pytest.mark.parametrize("kind", ["loglinear", "cosine"])
def test_mdlm_nelbo_of_exact_model_is_the_nll(kind):
    """Monte Carlo over t (MDLM's stratified draw) and the masks: with the exact conditionals and alpha(1) = 0,
    E[NELBO] = -log p(x). With 200000 draws per sequence the estimate must lie within 4 standard errors of
    -log p(x), and the standard error must be below 0.02 nats (measured: 0.003 .. 0.013; the weight 1 / t makes the
    per-draw spread heavy-tailed)."""
    classes, length = 2, 4
    seqs, probs = markov_law(classes, length, *CHAIN2)
    table = masked_oracle_table(seqs, probs, classes)
    model = lambda z, t: table[sequence_index(z, classes + 1)]  # noqa: E731
    schedule = MaskingSchedule(kind, eps=0.0)
    generator = torch.Generator().manual_seed(4)
    for index in (0, 5, 11):
        x0 = seqs[index].expand(200000, -1)
        draws = mdlm_nelbo(model, x0, schedule, classes + 1, classes, generator=generator)
        estimate, standard_error = draws.mean().item(), draws.std().item() / math.sqrt(draws.numel())
        assert standard_error < 0.02
        assert abs(estimate + math.log(float(probs[index]))) < 4 * standard_error


def test_mdlm_schedule_and_subs():
    for kind in ("loglinear", "cosine"):
        schedule = MaskingSchedule(kind, eps=1e-3)
        t = torch.linspace(0, 1, 11, dtype=torch.float64)
        assert schedule.alpha(t)[0] == pytest.approx(1.0) and schedule.alpha(t)[-1] == pytest.approx(1e-3)
        assert torch.allclose(schedule.time_from_alpha(schedule.alpha(t)), t, atol=1e-12)
        tt = t.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(schedule.alpha(tt).sum(), tt)
        assert torch.allclose(grad, schedule.alpha_derivative(t), atol=1e-12)
    z = torch.tensor([[3, 1]])
    log_p = subs_log_probs(torch.zeros(1, 2, 4), z, 3)
    assert torch.allclose(log_p[0, 0].exp(), torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0], dtype=torch.float64))
    assert torch.equal(log_p[0, 1].exp(), torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="kind"):
        MaskingSchedule("linear")
    with pytest.raises(ValueError, match="eps"):
        MaskingSchedule("cosine", eps=1.0)


# -------------------------------------------------------------------------------------------------- DDPD


def ddpd_oracles(seqs: torch.Tensor, probs: torch.Tensor, classes: int):
    """Exact planner P(z^d = noise | x, n noisy) and denoiser p(x_0^d | x, z^d = noise, n) for the uniform-noise
    process conditioned on n = round(t L) noisy positions, by enumeration over noise sets and sequences."""
    length = seqs.shape[1]
    subsets = torch.tensor(list(itertools.product([False, True], repeat=length)))  # (C, L): True = noise
    states = all_sequences(classes, length)
    one_hot = torch.nn.functional.one_hot(seqs, classes).double()  # (S, L, K)
    tables = {}

    def tables_for(n):
        if n not in tables:
            agree = states[:, None, :] == seqs[None, :, :]  # (A, S, L)
            consistent = (agree[:, :, None, :] | subsets[None, None]).all(-1)  # (A, S, C)
            weight = (probs[None, :, None] * consistent) * (subsets.sum(-1) == n)[None, None]  # (A, S, C)
            posterior = weight / weight.sum((1, 2), keepdim=True)
            planner = torch.einsum("asc,cl->al", posterior, subsets.double())
            joint = torch.einsum("asc,cl,slk->alk", posterior, subsets.double(), one_hot)
            denoiser = torch.where(planner[..., None] > 0, joint / planner[..., None].clamp_min(1e-300), 1.0)
            tables[n] = (planner.clamp(0, 1), (denoiser / denoiser.sum(-1, keepdim=True)).log())
        return tables[n]

    def planner(x, t):
        return tables_for(int(round(float(t[0]) * length)))[0][sequence_index(x, classes)]

    def denoiser(x, t):
        return tables_for(int(round(float(t[0]) * length)))[1][sequence_index(x, classes)]

    return planner, denoiser


@pytest.mark.parametrize("chain", [CHAIN2, CHAIN3], ids=["2-state", "3-state"])
def test_ddpd_sampler_with_oracle_planner(chain):
    classes, length = len(chain[0]), 4
    seqs, probs = markov_law(classes, length, *chain)
    planner, denoiser = ddpd_oracles(seqs, probs, classes)
    for adaptive in (False, True):
        samples = ddpd_sample(planner, denoiser, (20000, length), classes, num_steps=length,
                              adaptive_time=adaptive, generator=torch.Generator().manual_seed(5))
        assert chi_square_pvalue(samples, seqs, probs, classes) > CHI2_LEVEL


def test_ddpd_sampler_wrong_planner_is_detected():
    """Control: a planner that ignores the state (uniform over positions) re-denoises clean positions and misses
    noisy ones; the same chi-square test rejects it, so the oracle test above has power."""
    classes, length = 2, 4
    seqs, probs = markov_law(classes, length, *CHAIN2)
    _, denoiser = ddpd_oracles(seqs, probs, classes)
    uniform_planner = lambda x, t: torch.full(x.shape, 0.5)  # noqa: E731
    samples = ddpd_sample(uniform_planner, denoiser, (20000, length), classes, num_steps=length,
                          generator=torch.Generator().manual_seed(5))
    assert chi_square_pvalue(samples, seqs, probs, classes) < CHI2_LEVEL


def test_ddpd_forward_process_and_losses():
    generator = torch.Generator().manual_seed(6)
    x0 = torch.zeros(50000, 2, dtype=torch.long)
    t = torch.full((50000,), 0.4)
    x_t, is_noise = ddpd_corrupt(x0, t, 5, generator=generator)
    # P(noise) = t; P(x_t = v) = (1 - t) [v = 0] + t / 5
    assert stats.binomtest(int(is_noise.sum()), is_noise.numel(), 0.4).pvalue > CHI2_LEVEL
    expected = np.array([0.6 + 0.08, 0.08, 0.08, 0.08, 0.08]) * x_t.numel()
    assert stats.chisquare(torch.bincount(x_t.flatten(), minlength=5).numpy(), expected).pvalue > CHI2_LEVEL
    assert torch.equal(x_t[~is_noise], x0[~is_noise])
    noise_logits = torch.tensor([[2.0, -1.0]])
    flags = torch.tensor([[True, False]])
    manual = -(math.log(1 / (1 + math.exp(-2.0))) + math.log(1 - 1 / (1 + math.exp(1.0)))) / 2
    assert ddpd_planner_loss(noise_logits, flags).item() == pytest.approx(manual, rel=1e-6)
    logits = torch.tensor([[[0.0, math.log(3.0)], [5.0, 0.0]]])
    assert ddpd_denoiser_loss(logits, torch.tensor([[1, 1]]), flags).item() == pytest.approx(-math.log(0.75))


def test_ddpd_all_positions_in_one_step_gives_exact_marginals():
    """positions_per_step = length, one step at t = 1: every position is drawn from the oracle's p(x^d | all
    noise), the data marginal of position d, so each position's marginal is exact (the joint is not)."""
    classes, length = 3, 4
    seqs, probs = markov_law(classes, length, *CHAIN3)
    planner, denoiser = ddpd_oracles(seqs, probs, classes)
    samples = ddpd_sample(planner, denoiser, (20000, length), classes, num_steps=1, positions_per_step=length,
                          generator=torch.Generator().manual_seed(7))
    for position in range(length):
        marginal = torch.zeros(classes, dtype=torch.float64).index_add_(0, seqs[:, position], probs)
        counts = torch.bincount(samples[:, position], minlength=classes).numpy()
        assert stats.chisquare(counts, marginal.numpy() * counts.sum()).pvalue > CHI2_LEVEL


@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 3)])
def test_mdlm_samplers_shapes(shape):
    k, mask = 4, 3
    model = lambda z, t: torch.zeros(*z.shape, k)  # noqa: E731
    for sampler in (lambda: mdlm_sample(model, shape, MaskingSchedule("cosine"), k, mask, num_steps=7),
                    lambda: mdlm_sample_first_hitting(model, shape, MaskingSchedule(), k, mask)):
        x = sampler()
        assert x.shape == shape and x.dtype == torch.long and bool(((x >= 0) & (x < mask)).all())


def test_d3pm_reverse_from_probabilities():
    process = D3PM("gaussian", 5, 10)
    generator = torch.Generator().manual_seed(8)
    logits = torch.randn(3, 2, 5, generator=generator, dtype=torch.float64)
    x_t, t = torch.randint(0, 5, (3, 2), generator=generator), torch.tensor([1, 4, 10])
    assert torch.allclose(process.model_probs_from_x0(logits.softmax(-1), x_t, t), process.model_probs(logits, x_t, t),
                          atol=1e-14)
    with pytest.raises(ValueError, match="x0_probs: probabilities must sum to one"):
        process.model_probs_from_x0(logits.softmax(-1) * 1.1, x_t, t)
    with pytest.raises(ValueError, match="x0_probs: expected shape"):
        process.model_probs_from_x0(logits.softmax(-1)[:, :1], x_t, t)


# ------------------------------------------------------------------------------------------- validation


def test_validation_errors_name_the_argument():
    process = D3PM("uniform", 4, 10)
    x = torch.zeros(2, 3, dtype=torch.long)
    t = torch.tensor([1, 2])
    good = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="x_t: category index out of range"):
        process.model_probs(good, torch.full((2, 3), 4), t)
    with pytest.raises(ValueError, match="x0: expected an integer"):
        process.q_probs(x.float(), t)
    with pytest.raises(ValueError, match="logits: expected shape"):
        process.model_probs(torch.zeros(2, 3, 5), x, t)
    with pytest.raises(ValueError, match="logits: contains NaN"):
        process.model_probs(torch.full((2, 3, 4), float("nan")), x, t)
    with pytest.raises(ValueError, match="t: expected values in"):
        process.model_probs(good, x, torch.tensor([0, 11]))
    with pytest.raises(ValueError, match="t: expected a scalar or shape"):
        process.q_probs(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="kind"):
        D3PM("gauss", 4)
    with pytest.raises(ValueError, match="betas"):
        D3PM("uniform", 4, betas=[0.5, 1.5])
    with pytest.raises(ValueError, match="mask_index"):
        D3PM("absorbing", 4, 5, mask_index=4)
    with pytest.raises(ValueError, match="x0: clean data may not contain the mask"):
        D3PM("absorbing", 4, 5).loss_terms(good, torch.full((2, 3), 3), x, t)
    with pytest.raises(ValueError, match="model output: contains NaN"):
        process.sample(lambda x_t, tt: torch.full((*x_t.shape, 4), float("nan")), (2, 3))
    schedule = MaskingSchedule()
    with pytest.raises(ValueError, match="x0: clean data may not contain the mask"):
        mdlm_nelbo(lambda z, tt: good, torch.full((2, 3), 3), schedule, 4, 3)
    with pytest.raises(ValueError, match="logits: expected shape"):
        mdlm_nelbo(lambda z, tt: torch.zeros(2, 3, 3), x, schedule, 4, 3)
    with pytest.raises(ValueError, match="schedule"):
        mdlm_sample(lambda z, tt: good, (2, 3), "loglinear", 4, 3)
    planner = lambda xx, tt: torch.full(xx.shape, 0.5)  # noqa: E731
    denoiser = lambda xx, tt: torch.zeros(*xx.shape, 4)  # noqa: E731
    with pytest.raises(ValueError, match="planner output: expected finite probabilities"):
        ddpd_sample(lambda xx, tt: torch.full(xx.shape, 1.5), denoiser, (2, 3), 4, 3)
    with pytest.raises(ValueError, match="planner output: expected shape"):
        ddpd_sample(lambda xx, tt: torch.full((2, 4), 0.5), denoiser, (2, 3), 4, 3)
    with pytest.raises(ValueError, match="denoiser output: contains NaN"):
        ddpd_sample(planner, lambda xx, tt: torch.full((*xx.shape, 4), float("nan")), (2, 3), 4, 3)
    with pytest.raises(ValueError, match="x_init: category index out of range"):
        ddpd_sample(planner, denoiser, (2, 3), 4, 3, x_init=torch.full((2, 3), 7))
    with pytest.raises(ValueError, match="is_noise"):
        ddpd_planner_loss(torch.zeros(2, 3), torch.zeros(2, 3))


def test_probability_validation():
    from polydiff.core.discrete._validation import check_probs

    with pytest.raises(ValueError, match="probs: probabilities must sum to one"):
        check_probs("probs", torch.tensor([[0.5, 0.4]]))
    with pytest.raises(ValueError, match="probs: contains negative"):
        check_probs("probs", torch.tensor([[1.5, -0.5]]))
    assert check_probs("probs", torch.tensor([[0.5, 0.5]])) is not None
