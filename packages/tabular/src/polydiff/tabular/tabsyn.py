"""TabSyn (Zhang et al., 2024, "Mixed-Type Tabular Data Synthesis with Score-based Diffusion in Latent Space").

Two stages, both trained by :class:`polydiff.core.training.Trainer`:

1. A VAE over columns (sec. 3.2): every column becomes a token of width ``d_token`` (numerical: x w_i + b_i;
   categorical: an embedding row + b_j), two Transformer encoders give the latent mean and log-variance per token,
   a Transformer decoder and one linear head per column reconstruct the row (MSE for the numerical scores, cross
   entropy per categorical column). Loss = reconstruction + beta KL with beta annealed from ``beta_max`` down to
   ``beta_min`` (the paper lowers beta by ``beta_decay`` whenever the loss stalls; here the same factor is applied
   on a fixed cadence, so a fit is deterministic in its step count).
2. A score model over the flattened latent means (tokens x d_token), centred and scaled to std 0.5: EDM
   (Karras et al., 2022) with its preconditioning (:class:`polydiff.core.losses.EDMPreconditioner`), its loss
   weighting and log-normal noise levels (:func:`polydiff.core.losses.diffusion_loss`, weighting "edm"), an MLP of
   SiLU blocks. Sampling: a core solver (default Heun, EDM's second-order sampler, 50 steps on the Karras grid, the
   paper's setting) from sigma_max to 0, then the VAE decoder (numerical scores as decoded, categorical values by
   argmax).

Network widths and step counts are smaller than the paper's GPU defaults (VAE 4000 epochs, score MLP 1024 wide,
10,000 epochs) so one fit takes minutes on a 2-core CPU: measured with one thread on the 10-column diamonds
table, 100 VAE steps at batch 1024 cost about 16 CPU seconds and 100 score steps about 5, so the defaults (1500
VAE steps at batch 512, 2000 score steps) cost about 220 CPU seconds. The architecture, losses and sampler are the
paper's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .model import _check_solver, _Rows
from .table_model import TableModel, check_common_config, finite_list

__all__ = ["TabSyn", "TabSynConfig"]


@dataclass(frozen=True)
class TabSynConfig:
    """Every knob of TabSyn, validated on construction.

    d_token, vae_layers, vae_heads, vae_ffn_factor: the VAE's tokens and Transformers (paper: 4, 2, 1, 32).
    vae_steps, vae_batch_size, vae_lr: VAE training. beta_max, beta_min, beta_decay: the KL weight, multiplied by
    ``beta_decay`` every ``vae_steps // 20`` steps from ``beta_max`` until ``beta_min`` (paper: 1e-2, 1e-5, 0.7).
    hidden, steps, batch_size, lr, ema_decay: the score MLP and its training. solver, sample_steps, grid: sampling
    (a core solver; paper: Heun, 50 steps, Karras grid). nan, seed, progress: as :class:`TabDDPMConfig`.
    """

    d_token: int = 4
    vae_layers: int = 2
    vae_heads: int = 1
    vae_ffn_factor: int = 32
    vae_steps: int = 1500
    vae_batch_size: int = 512
    vae_lr: float = 1e-3
    beta_max: float = 1e-2
    beta_min: float = 1e-5
    beta_decay: float = 0.7
    hidden: tuple = (512, 512, 512)
    steps: int = 2000
    batch_size: int = 1024
    lr: float = 1e-3
    ema_decay: float = 0.999
    solver: str = "heun"
    sample_steps: int = 50
    grid: str = "karras"
    nan: str = "category"
    seed: int = 0
    progress: bool = False

    def __post_init__(self):
        from polydiff.core.grids import GRIDS
        from polydiff.core.schedules import check_real

        check_common_config(self)
        if self.d_token % self.vae_heads:
            raise ValueError(f"vae_heads: must divide d_token={self.d_token}, got {self.vae_heads}")
        check_real("vae_lr", self.vae_lr, low=0.0, low_open=True)
        check_real("beta_min", self.beta_min, low=0.0)
        check_real("beta_max", self.beta_max, low=self.beta_min)
        check_real("beta_decay", self.beta_decay, low=0.0, low_open=True, high=1.0)
        check_real("ema_decay", self.ema_decay, low=0.0, high=1.0, high_open=True)
        _check_solver(self.solver)
        if not isinstance(self.grid, str) or self.grid not in GRIDS:
            raise ValueError(f"grid: unknown grid {self.grid!r}; choices: {list(GRIDS)}")


class _Tokenizer(nn.Module):
    """Row -> tokens (batch, d + C, d_token): x_i w_i + b_i for numerical column i, E_j[x_j] + b_j for
    categorical column j (TabSyn's tokenizer without the [CLS] token, which the latent drops anyway)."""

    def __init__(self, num_numeric: int, num_classes: list[int], d_token: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_numeric, d_token) / math.sqrt(d_token))
        self.has_categorical = bool(num_classes)
        self.register_buffer("offsets", torch.tensor([0, *np.cumsum(num_classes)[:-1].tolist()][:len(num_classes)],
                                                     dtype=torch.long))
        self.embedding = nn.Embedding(max(sum(num_classes), 1), d_token)
        self.bias = nn.Parameter(torch.zeros(num_numeric + len(num_classes), d_token))

    def forward(self, x_num: Tensor, x_cat: Tensor) -> Tensor:
        tokens = [x_num[:, :, None] * self.weight]
        if self.has_categorical:
            tokens.append(self.embedding(x_cat + self.offsets))
        return torch.cat(tokens, 1) + self.bias


def _transformer(config: TabSynConfig) -> nn.Module:
    layer = nn.TransformerEncoderLayer(config.d_token, config.vae_heads, config.d_token * config.vae_ffn_factor,
                                       dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, config.vae_layers, enable_nested_tensor=False)


class _VAE(nn.Module):
    """TabSyn's column VAE. encode -> (mu, logvar) (batch, tokens, d_token); decode(z) -> (x_num (batch, d),
    [logits (batch, K_j)])."""

    def __init__(self, num_numeric: int, num_classes: list[int], config: TabSynConfig):
        super().__init__()
        self.num_numeric, self.num_classes = num_numeric, list(num_classes)
        self.tokenizer = _Tokenizer(num_numeric, num_classes, config.d_token)
        self.encoder_mu, self.encoder_logvar, self.decoder = (_transformer(config) for _ in range(3))
        self.numeric_head = nn.Parameter(torch.randn(num_numeric, config.d_token) / math.sqrt(config.d_token))
        self.numeric_bias = nn.Parameter(torch.zeros(num_numeric))
        self.categorical_heads = nn.ModuleList(nn.Linear(config.d_token, k) for k in num_classes)

    def encode(self, x_num: Tensor, x_cat: Tensor) -> tuple[Tensor, Tensor]:
        tokens = self.tokenizer(x_num, x_cat)
        return self.encoder_mu(tokens), self.encoder_logvar(tokens)

    def decode(self, z: Tensor) -> tuple[Tensor, list[Tensor]]:
        h = self.decoder(z)
        x_num = (h[:, :self.num_numeric] * self.numeric_head).sum(-1) + self.numeric_bias
        logits = [head(h[:, self.num_numeric + j]) for j, head in enumerate(self.categorical_heads)]
        return x_num, logits


class _VAELoss:
    """loss_fn(vae, batch) for the Trainer: MSE + mean cross entropy + beta KL, beta on its step schedule."""

    def __init__(self, config: TabSynConfig):
        self.config, self.calls = config, 0

    def beta(self) -> float:
        c = self.config
        return max(c.beta_max * c.beta_decay ** (self.calls // max(1, c.vae_steps // 20)), c.beta_min)

    def __call__(self, vae: _VAE, batch) -> dict:
        x_num, x_cat = batch
        beta = self.beta()
        self.calls += 1
        mu, logvar = vae.encode(x_num, x_cat)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        x_hat, logits = vae.decode(z)
        zero = mu.new_zeros(())
        mse = (x_hat - x_num).square().mean() if x_num.shape[1] else zero
        ce = (sum(nn.functional.cross_entropy(l, x_cat[:, j]) for j, l in enumerate(logits)) / len(logits)
              if logits else zero)
        kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).mean()
        return {"loss": mse + ce + beta * kl, "mse": mse.detach(), "ce": ce.detach(), "kl": kl.detach()}


class _ScoreNet(nn.Module):
    """The score MLP F(x, c_noise) of the latent diffusion (batch, width) -> (batch, width)."""

    def __init__(self, width: int, hidden: tuple):
        super().__init__()
        from polydiff.core.nn import MLPDenoiser

        self.mlp = MLPDenoiser(width, hidden=hidden, time_embedding_dim=128, activation="silu")

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        return self.mlp(x, c_noise * 1000)  # c_noise = ln(sigma) / 4 spans about [-1.6, 1.1]: spread it out


class _ScoreLoss:
    def __init__(self, schedule):
        self.schedule = schedule

    def __call__(self, model, batch) -> dict:
        from polydiff.core.losses import diffusion_loss

        (z,) = batch
        loss = diffusion_loss(model, self.schedule, z, prediction="x0", weighting="edm")
        return {"loss": loss}


class TabSyn(TableModel):
    """TabSyn for a pandas DataFrame, with TabDDPM's verbs:

        model = TabSyn().fit(df, target="y")
        synthetic = model.sample(1000, seed=0)
        model.save_pretrained("model/"); TabSyn.from_pretrained("model/")

    Keyword arguments are :class:`TabSynConfig` fields; ``device`` as for TabDDPM.
    """

    config_class = TabSynConfig
    name = "TabSyn"
    format = "polydiff-tabular/tabsyn-1"

    def _build(self) -> None:
        from polydiff.core import EDMSchedule
        from polydiff.core.losses import EDMPreconditioner

        c = self.config
        self.vae = _VAE(self.num_numeric, self.num_classes, c)
        self.width = (self.num_numeric + len(self.num_classes)) * c.d_token
        self.schedule = EDMSchedule(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5)
        self.score = EDMPreconditioner(_ScoreNet(self.width, c.hidden), sigma_data=0.5)
        self.latent_mean = torch.zeros(self.width)
        self.latent_scale = torch.ones(self.width)

    def _modules(self) -> dict:
        return {"vae": self.vae, "score": self.score}

    def _state(self) -> dict:
        return {"latent_mean": self.latent_mean.tolist(), "latent_scale": self.latent_scale.tolist()}

    def _load_state(self, state: dict, config_file) -> None:
        values = {}
        for key in ("latent_mean", "latent_scale"):
            value = state.get(key)
            if not finite_list(value, self.width):
                raise ValueError(f"{config_file}: state: {key}: expected {self.width} finite numbers")
            values[key] = torch.tensor(value, dtype=torch.float32)
        if bool((values["latent_scale"] <= 0).any()):
            raise ValueError(f"{config_file}: state: latent_scale: expected positive numbers")
        self.latent_mean, self.latent_scale = values["latent_mean"], values["latent_scale"]

    def _train_config(self, steps: int, batch_size: int, rows: int, lr: float, ema_decay):
        from polydiff.core.training import TrainConfig

        return TrainConfig(steps=steps, batch_size=min(batch_size, rows), lr=lr, ema_decay=ema_decay,
                           ema_min_decay=0.0, grad_clip=None, seed=self.config.seed, progress=self.config.progress,
                           device=str(self.device), log_every=max(1, steps // 20))

    def _train(self, x_num: Tensor, x_cat: Tensor) -> None:
        from polydiff.core.training import Trainer

        c, rows = self.config, x_num.shape[0]
        vae_trainer = Trainer(self.vae, _VAELoss(c), _Rows(x_num, x_cat),
                              self._train_config(c.vae_steps, c.vae_batch_size, rows, c.vae_lr, None))
        vae_trainer.fit()
        self.vae = vae_trainer.model.eval()
        with torch.no_grad():
            mu = torch.cat([self.vae.encode(x_num[i:i + 4096].to(self.device), x_cat[i:i + 4096].to(self.device))[0]
                            for i in range(0, rows, 4096)]).flatten(1).cpu()
        self.latent_mean = mu.mean(0)
        self.latent_scale = (mu.std(0) if rows > 1 else torch.ones(self.width)).clamp_min(1e-6) / 0.5
        z = (mu - self.latent_mean) / self.latent_scale
        score_trainer = Trainer(self.score, _ScoreLoss(self.schedule), _Rows(z),
                                self._train_config(c.steps, c.batch_size, rows, c.lr, c.ema_decay))
        score_trainer.fit()
        self.score = score_trainer.ema_model.eval()
        self.vae.requires_grad_(False)
        self.history = {"vae_steps": vae_trainer.step, "steps": score_trainer.step}

    def _sample_batch(self, size: int, generator: torch.Generator, steps: int):
        from polydiff.core import Denoiser
        from polydiff.core import sample as core_sample

        noise = torch.randn(size, self.width, generator=generator, device=self.device)
        denoiser = Denoiser(self.score, self.schedule, prediction="x0")
        z = core_sample(denoiser, noise, solver=self.config.solver, steps=steps, grid=self.config.grid,
                        final_zero=True, generator=generator)
        z = z * self.latent_scale.to(self.device) + self.latent_mean.to(self.device)
        x_num, logits = self.vae.decode(z.view(size, -1, self.config.d_token))
        x_cat = (torch.stack([l.argmax(-1) for l in logits], 1) if logits
                 else torch.zeros(size, 0, dtype=torch.long, device=self.device))
        return x_num, x_cat
