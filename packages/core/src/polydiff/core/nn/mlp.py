"""The TabDDPM denoising MLP (Kotelnikov et al., 2023, "TabDDPM: Modelling Tabular Data with Diffusion Models",
sec. 4 and appendix: ``MLPDiffusion``).

h = proj(x) + time_mlp(sinusoidal(t)) [+ label_embedding(y)]; then blocks Linear -> ReLU/SiLU -> Dropout (each
added to its input when ``residual`` and the widths agree); a linear head. Labels are embedded with one extra
"null" index ``num_classes`` so y=None gives the unconditional model of classifier-free guidance.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..pretrained import PretrainedMixin
from .embeddings import SinusoidalEmbedding, check_positive_int, check_time

__all__ = ["MLPDenoiser"]

_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU}


class MLPDenoiser(PretrainedMixin, nn.Module):
    """Args:
        in_features: width of x.
        out_features: width of the output (default: in_features).
        hidden: widths of the hidden blocks.
        time_embedding_dim: width of the time (and label) embedding, which is also the width of the input projection.
        num_classes: number of labels for conditional generation (0: unconditional).
        dropout: dropout probability inside each block.
        residual: add each block's output to its input where the widths agree.
        activation: "relu" (TabDDPM) or "silu".
        max_period: of the sinusoidal time embedding.

    forward(x: (batch, in_features), t: (batch,) or scalar, y: (batch,) long | None) -> (batch, out_features).
    y takes values in [0, num_classes]; the value num_classes (or y=None) is the null label.
    """

    def __init__(self, in_features: int, out_features: int | None = None, hidden=(512, 512, 512),
                 time_embedding_dim: int = 128, num_classes: int = 0, dropout: float = 0.0, residual: bool = True,
                 activation: str = "relu", max_period: float = 10000.0):
        super().__init__()
        check_positive_int(in_features, "in_features")
        out_features = in_features if out_features is None else check_positive_int(out_features, "out_features")
        hidden = tuple(hidden)
        if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise ValueError(f"hidden: expected a non-empty sequence of positive integers, got {hidden!r}")
        check_positive_int(time_embedding_dim, "time_embedding_dim")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes: expected an integer >= 0, got {num_classes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation: expected one of {list(_ACTIVATIONS)}, got {activation!r}")
        self.config = {"in_features": in_features, "out_features": out_features, "hidden": list(hidden),
                       "time_embedding_dim": time_embedding_dim, "num_classes": num_classes, "dropout": float(dropout),
                       "residual": bool(residual), "activation": activation, "max_period": float(max_period)}
        self.in_features, self.num_classes, self.residual = in_features, num_classes, residual
        d = time_embedding_dim
        self.proj = nn.Linear(in_features, d)
        self.time_features = SinusoidalEmbedding(d, max_period)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.label_embedding = nn.Embedding(num_classes + 1, d) if num_classes else None
        widths = (d,) + hidden
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(w_in, w_out), _ACTIVATIONS[activation](), nn.Dropout(dropout))
            for w_in, w_out in zip(widths[:-1], widths[1:], strict=False))
        self.head = nn.Linear(hidden[-1], out_features)

    def forward(self, x: Tensor, t, y: Tensor | None = None) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x: expected shape (batch, {self.in_features}), got {tuple(getattr(x, 'shape', ()))}")
        batch = x.shape[0]
        t = check_time(t, batch, x.dtype, x.device)
        h = self.proj(x) + self.time_mlp(self.time_features(t))
        if self.label_embedding is not None:
            if y is None:
                y = torch.full((batch,), self.num_classes, dtype=torch.long, device=x.device)
            if not isinstance(y, Tensor) or y.shape != (batch,) or y.is_floating_point():
                raise ValueError(f"y: expected integer labels of shape ({batch},), got {getattr(y, 'shape', y)}")
            if bool(((y < 0) | (y > self.num_classes)).any()):
                raise ValueError(f"y: labels must lie in [0, {self.num_classes}] ({self.num_classes} = null label)")
            h = h + self.label_embedding(y.long())
        elif y is not None:
            raise ValueError("y: this MLPDenoiser was built with num_classes=0 and takes no labels")
        for block in self.blocks:
            out = block(h)
            h = h + out if self.residual and out.shape == h.shape else out
        return self.head(h)
