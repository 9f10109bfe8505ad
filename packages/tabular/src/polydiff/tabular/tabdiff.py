"""TabDiff (Shi et al., 2025, "TabDiff: a Mixed-type Diffusion Model for Tabular Data Generation").

One network denoises every column in continuous time t in [0, 1]: the numerical scores (the quantile-normal
columns of :class:`~polydiff.tabular.transform.TableTransformer`) diffuse with a variance-exploding noise level
per column, sigma_i(t), and every categorical column is masked with its own probability 1 - alpha_j(t) (masked
diffusion, MDLM's absorbing state); both schedules are learnable per column
(:mod:`polydiff.core.column_schedules`: ``PowerMeanSchedule`` with rho_i, ``PowerMaskingSchedule`` with k_j).

Network: an MLP (:class:`polydiff.core.nn.MLPDenoiser`, SiLU) over [c_in x_t, onehot(z_t) with the mask as an
extra value] and 1000 t, returning F for the numerical block and x_0 logits per categorical column. The numerical
prediction is EDM's preconditioned D = c_skip x + c_out F per column (Karras et al., 2022, eq. 7, sigma_data = 1,
the std of the scores).

Loss (sec. 3.3) at t ~ U(0, 1) (one stratified draw per batch): the mean over numerical columns of
||D_i - x_0,i||^2 / c_out,i^2 (EDM's weighting, unit weight on F) plus the mean over categorical columns of the
masked-diffusion NELBO term k_j / t * CE_j on the masked entries. The schedule parameters train in the same
optimizer as the network; rho_i gets its gradient through x_t = x_0 + sigma_i(t) eps, k_j through the weight.

Sampling (sec. 3.4): :func:`polydiff.core.column_schedules.sample_columns`, Heun steps of the per-column
probability-flow ODE and per-column MDLM unmasking on a uniform grid of ``sample_steps`` (paper: 50) steps;
``churn`` > 0 makes it TabDiff's mixed-type stochastic sampler (the paper's code samples with S_churn = 1; the
default here, 0, is the deterministic sampler the committed benchmark rows used). TabDiff's classifier-free
guidance for imputation is not implemented.

Whitening (not in the paper): the numerical scores are decorrelated before diffusion, x_w = (x - m) C^(-1/2) with
the training rows' mean m and covariance C (ZCA, so each coordinate stays tied to its column), and sampled rows
are coloured back, x = x_w C^(1/2) + m. A table whose columns nearly determine each other (diamonds' x, y, z and
carat) has directions of tiny variance; after whitening each is a unit-variance coordinate with its own noise
schedule, so the network's error along it is no longer a large share of its spread. ``whiten="auto"`` (the
default) whitens only such a table: one whose scores' correlation matrix has an eigenvalue below
``WHITEN_BELOW`` (0.05, a straight contrast of the columns with under a fifth of a column's spread); elsewhere
the rotation mixes columns of few values into coordinates of many and did not help (``whiten=True`` forces it,
``False`` turns it off).

The network and step count are smaller than the paper's GPU defaults so one fit takes minutes on a 2-core CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .model import _Rows
from .table_model import TableModel, check_common_config, finite_list

__all__ = ["TabDiff", "TabDiffConfig"]

_SIGMA_DATA = 1.0
#: ``whiten="auto"`` whitens when the numerical scores' correlation matrix has an eigenvalue below this
WHITEN_BELOW = 0.05


@dataclass(frozen=True)
class TabDiffConfig:
    """Every knob of TabDiff, validated on construction.

    hidden: the MLP. steps, batch_size, lr, weight_decay, ema_decay: training through the core Trainer.
    sigma_min, sigma_max, rho: the numerical schedules (paper: 0.002, 80, 7); k: the initial masking power
    (paper: 1, MDLM's log-linear schedule); learn_schedules: train rho and k (the paper's model) or keep them
    fixed. sample_steps: sampling steps (paper: 50). churn: the stochastic sampler's S_churn
    (:func:`polydiff.core.column_schedules.sample_columns`; paper: 1, 0 = deterministic). whiten: diffuse the
    numerical scores after a ZCA whitening fitted on the training rows, True, False or "auto" (only a table with
    a near-exact linear relation between its numerical columns; module docstring; not in the paper).
    nan, seed, progress: as :class:`TabDDPMConfig`.
    """

    hidden: tuple = (512, 512, 512)
    steps: int = 3000
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    k: float = 1.0
    learn_schedules: bool = True
    sample_steps: int = 50
    churn: float = 0.0
    whiten: bool | str = "auto"
    nan: str = "category"
    seed: int = 0
    progress: bool = False

    def __post_init__(self):
        from polydiff.core.schedules import check_real

        check_common_config(self)
        check_real("weight_decay", self.weight_decay, low=0.0)
        check_real("ema_decay", self.ema_decay, low=0.0, high=1.0, high_open=True)
        check_real("sigma_min", self.sigma_min, low=0.0, low_open=True)
        check_real("sigma_max", self.sigma_max, low=self.sigma_min, low_open=True)
        check_real("rho", self.rho, low=0.0, low_open=True)
        check_real("k", self.k, low=0.0, low_open=True)
        check_real("churn", self.churn, low=0.0)
        if not isinstance(self.learn_schedules, bool):
            raise ValueError(f"learn_schedules: expected True or False, got {self.learn_schedules!r}")
        if not (isinstance(self.whiten, bool) or self.whiten == "auto"):
            raise ValueError(f"whiten: expected True, False or 'auto', got {self.whiten!r}")


class _Network(nn.Module):
    """The TabDiff denoiser with its learnable schedules as submodules (so the Trainer's optimizer and EMA see
    them). forward(x (batch, d), z (batch, C) long, t (batch,)) -> (x0 (batch, d), [logits (batch, K_j)])."""

    def __init__(self, num_numeric: int, num_classes: list[int], config: TabDiffConfig):
        super().__init__()
        from polydiff.core.column_schedules import PowerMaskingSchedule, PowerMeanSchedule
        from polydiff.core.nn import MLPDenoiser

        self.num_numeric, self.num_classes = num_numeric, list(num_classes)
        self.sigma = (PowerMeanSchedule(num_numeric, config.sigma_min, config.sigma_max, config.rho,
                                        learnable=config.learn_schedules) if num_numeric else None)
        self.masking = (PowerMaskingSchedule(len(num_classes), config.k, learnable=config.learn_schedules)
                        if num_classes else None)
        width_in = num_numeric + sum(k + 1 for k in num_classes)
        width_out = num_numeric + sum(num_classes)
        self.mlp = MLPDenoiser(width_in, width_out, hidden=config.hidden, time_embedding_dim=128,
                               activation="silu")

    def onehot(self, z: Tensor) -> Tensor:
        return torch.cat([nn.functional.one_hot(z[:, j], k + 1).float() for j, k in enumerate(self.num_classes)],
                         1)

    def forward(self, x: Tensor, z: Tensor, t: Tensor) -> tuple[Tensor, list[Tensor]]:
        d, parts = self.num_numeric, []
        if d:
            sigma = self.sigma(t).to(x.dtype)
            scale = (sigma.square() + _SIGMA_DATA**2).sqrt()
            parts.append(x / scale)
        if self.num_classes:
            parts.append(self.onehot(z))
        out = self.mlp(torch.cat(parts, 1), t.to(torch.float32) * 1000)
        x0 = x
        if d:
            c_skip, c_out = _SIGMA_DATA**2 / scale.square(), sigma * _SIGMA_DATA / scale
            x0 = c_skip * x + c_out * out[:, :d]
        logits = list(out[:, d:].split(self.num_classes, 1)) if self.num_classes else []
        return x0, logits


class _Loss:
    """loss_fn(network, batch) for the Trainer (module docstring)."""

    def __call__(self, network: _Network, batch) -> dict:
        x_num, x_cat = batch
        batch_size, d = x_num.shape
        # MDLM's low-discrepancy times: one uniform shift of an evenly spaced grid, kept away from t = 0
        u = (torch.rand((), device=x_num.device) + torch.arange(batch_size, device=x_num.device) / batch_size) % 1
        t = (1e-3 + (1 - 1e-3) * u).float()
        zero = x_num.new_zeros(())
        loss_num = loss_cat = zero
        z = x_cat
        if network.num_classes:
            masked = torch.rand(x_cat.shape, device=x_cat.device) < network.masking.masked_probability(t)
            z = torch.where(masked, torch.tensor(network.num_classes, device=x_cat.device), x_cat)
        x_t = x_num
        if d:
            sigma = network.sigma(t)
            x_t = x_num + sigma * torch.randn_like(x_num)
        x0, logits = network(x_t, z, t)
        if d:
            c_out = sigma * _SIGMA_DATA / (sigma.square() + _SIGMA_DATA**2).sqrt()
            loss_num = ((x0 - x_num) / c_out).square().mean()
        if network.num_classes:
            ce = torch.stack([nn.functional.cross_entropy(l, x_cat[:, j], reduction="none")
                              for j, l in enumerate(logits)], 1)
            loss_cat = (network.masking.loss_weight(t) * ce * masked).mean()
        return {"loss": loss_num + loss_cat, "loss_num": loss_num.detach(), "loss_cat": loss_cat.detach()}


class TabDiff(TableModel):
    """TabDiff for a pandas DataFrame, with TabDDPM's verbs:

        model = TabDiff().fit(df, target="y")
        synthetic = model.sample(1000, seed=0)
        model.save_pretrained("model/"); TabDiff.from_pretrained("model/")

    Keyword arguments are :class:`TabDiffConfig` fields; ``device`` as for TabDDPM. After fitting,
    ``model.network.sigma.rho`` and ``model.network.masking.k`` hold the learned per-column schedules.
    """

    config_class = TabDiffConfig
    name = "TabDiff"
    format = "polydiff-tabular/tabdiff-1"
    added_fields = {"churn": 0.0, "whiten": False}  # files saved before these options: deterministic, unwhitened

    def _build(self) -> None:
        self.network = _Network(self.num_numeric, self.num_classes, self.config)
        self.whitening: tuple[Tensor, Tensor] | None = None  # (mean (d,), colouring matrix (d, d))

    def _modules(self) -> dict:
        return {"network": self.network}

    def _state(self) -> dict:
        if self.whitening is None:
            return {}
        mean, colour = self.whitening
        return {"whiten_mean": mean.tolist(), "whiten_colour": colour.tolist()}

    def _load_state(self, state: dict, config_file) -> None:
        unexpected = sorted(set(state) - {"whiten_mean", "whiten_colour"})
        if unexpected:
            raise ValueError(f"{config_file}: state: unexpected keys {unexpected}")
        if not state:
            if self.config.whiten is True and self.num_numeric >= 2:
                raise ValueError(f"{config_file}: state: whiten is on but whiten_mean / whiten_colour are missing")
            return
        d = self.num_numeric
        mean, colour = state.get("whiten_mean"), state.get("whiten_colour")
        if not finite_list(mean, d):
            raise ValueError(f"{config_file}: state: whiten_mean: expected {d} finite numbers")
        if not (isinstance(colour, list) and len(colour) == d and all(finite_list(row, d) for row in colour)):
            raise ValueError(f"{config_file}: state: whiten_colour: expected a {d} x {d} matrix of finite numbers")
        self.whitening = (torch.tensor(mean, dtype=torch.float64), torch.tensor(colour, dtype=torch.float64))

    def _whitens(self, x_num: Tensor) -> bool:
        """Whether ``fit`` whitens these scores (``whiten`` True, or "auto" and a correlation eigenvalue below
        ``WHITEN_BELOW``)."""
        if self.config.whiten is False or x_num.shape[1] < 2 or x_num.shape[0] < 2:
            return False
        if self.config.whiten is True:
            return True
        x = x_num.double()
        if x.shape[0] < 3 or bool((x.std(0) <= 0).any()):  # too few rows, or a constant column: no correlation
            return False
        values = torch.linalg.eigvalsh(torch.corrcoef(x.T))
        return float(values.min()) < WHITEN_BELOW

    def _fit_whitening(self, x_num: Tensor) -> Tensor:
        """ZCA whitening of the training scores: x_w = (x - m) C^(-1/2), C's eigenvalues floored at 1e-4 of the
        largest (a column that repeats another adds no direction to blow up). Stores (m, C^(1/2)) for sampling."""
        x = x_num.double()
        mean = x.mean(0)
        values, vectors = torch.linalg.eigh(torch.cov(x.T))
        values = values.clamp_min(1e-4 * float(values.max().clamp_min(1e-12)))
        self.whitening = (mean, vectors @ torch.diag(values.sqrt()) @ vectors.T)
        return ((x - mean) @ (vectors @ torch.diag(values.rsqrt()) @ vectors.T)).float()

    def _train(self, x_num: Tensor, x_cat: Tensor) -> None:
        from polydiff.core.training import TrainConfig, Trainer

        c, rows = self.config, x_num.shape[0]
        if self._whitens(x_num):
            x_num = self._fit_whitening(x_num)
        train = TrainConfig(steps=c.steps, batch_size=min(c.batch_size, rows), lr=c.lr, weight_decay=c.weight_decay,
                            ema_decay=c.ema_decay, ema_min_decay=0.0, grad_clip=None, seed=c.seed,
                            progress=c.progress, device=str(self.device), log_every=max(1, c.steps // 20))
        trainer = Trainer(self.network, _Loss(), _Rows(x_num, x_cat), train)
        trainer.fit()
        self.network = trainer.ema_model.eval()
        self.history = {"steps": trainer.step}

    def _sample_batch(self, size: int, generator: torch.Generator, steps: int):
        from polydiff.core.column_schedules import sample_columns

        noise = torch.randn(size, self.num_numeric, generator=generator, device=self.device)
        x, z = sample_columns(self.network, noise, self.num_classes, self.network.sigma, self.network.masking,
                              steps=steps, churn=float(self.config.churn), generator=generator)
        if self.whitening is not None:
            mean, colour = (v.to(x.device) for v in self.whitening)
            x = (x.double() @ colour + mean).to(x.dtype)
        return x, z
