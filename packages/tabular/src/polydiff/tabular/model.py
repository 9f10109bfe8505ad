"""TabDDPM (Kotelnikov et al., 2023, "TabDDPM: Modelling Tabular Data with Diffusion Models"): one MLP denoises
the numerical columns (Gaussian diffusion on quantile-normalised values) and every categorical column (multinomial
diffusion, :class:`polydiff.core.discrete.multinomial.MultinomialDiffusion`) at the same time step, optionally
conditioned on a categorical target (the paper's setting for classification datasets).

Network: ``MLPDenoiser`` from :mod:`polydiff.core.nn`; input ``[x_num_t, onehot(x_cat_t)]`` (batch, d + sum K),
output ``[eps_hat, x0 logits]`` of the same width (sec. 3, "the MLP outputs eps for the numerical features and the
x0 logits for each categorical feature").

Training: the Gaussian eps loss plus the mean per-column multinomial loss at one shared step, through
:class:`polydiff.core.training.Trainer`. Sampling: any core solver on the numerical block, with the categorical
chain advanced in step with the solver's evaluations. Both are in :mod:`polydiff.tabular.joint`; the saved folder
is :mod:`polydiff.tabular.persistence`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from polydiff.core import Denoiser, DiscreteSchedule
from polydiff.core import sample as core_sample
from polydiff.core.discrete.multinomial import MultinomialDiffusion
from polydiff.core.grids import GRIDS
from polydiff.core.nn import MLPDenoiser
from polydiff.core.sampling import check_options, list_solvers
from polydiff.core.schedules import check_real

from .joint import BATCHED_TIME_SOLVERS, _JointModel, _Loss
from .persistence import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    _check_not_foreign,
    _read_config,
    _read_document,
    load_weights_and_transformer,
    write_weights_and_document,
)
from .table_model import _device, _integer, _real, _Rows
from .transform import NAN_MODES, TableTransformer

__all__ = ["TabDDPM", "TabDDPMConfig", "resolved_steps"]


@dataclass(frozen=True)
class TabDDPMConfig:
    """Every knob of TabDDPM, validated on construction.

    steps: optimizer steps; None (default) trains ``epochs`` passes over the data, clipped to
        [min_steps, max_steps] — 2000 steps for the bench's small tables (HMDA, Wage, CreditCard, penguins),
        5000 for Default and diamonds (``resolved_steps``).
    batch_size, lr, weight_decay, ema_decay: training (AdamW through the core Trainer; the EMA weights
        sample). num_timesteps, schedule: the diffusion ("cosine" as the paper's default, or "linear").
    hidden, time_embedding_dim, dropout: the MLP. conditional: condition on a categorical target (the paper's
        setting; ``sample(conditions=...)`` then fixes it); False models the target jointly with every other
        column, as one more categorical column.
    solver, sample_steps, grid: sampling (a name of ``polydiff.core.list_solvers()`` except "paradigms", which
        batches time steps; a kind of ``polydiff.core.grids.GRIDS``).
    nan: "category" or "impute" (see :mod:`polydiff.tabular.transform`). seed: training seed.
    progress: show the training and sampling progress bars.
    """

    steps: int | None = None
    epochs: int = 400
    min_steps: int = 2000
    max_steps: int = 5000
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-4
    ema_decay: float | None = 0.999
    num_timesteps: int = 1000
    schedule: str = "cosine"
    hidden: tuple = (512, 512, 512)
    time_embedding_dim: int = 128
    dropout: float = 0.0
    conditional: bool = True
    solver: str = "ddpm"
    sample_steps: int = 100
    grid: str = "uniform"
    nan: str = "category"
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        for name in ("steps", "batch_size", "num_timesteps", "sample_steps", "time_embedding_dim", "epochs",
                     "min_steps", "max_steps"):
            value = getattr(self, name)
            if name == "steps" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps, max_steps: expected min_steps <= max_steps, got {self.min_steps}, "
                             f"{self.max_steps}")
        if self.num_timesteps < 2:
            raise ValueError(f"num_timesteps: expected at least 2, got {self.num_timesteps}")
        if self.sample_steps > self.num_timesteps:
            raise ValueError(f"sample_steps: {self.sample_steps} exceeds num_timesteps={self.num_timesteps}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: expected a positive finite float, got {self.lr!r}")
        check_real("weight_decay", self.weight_decay, low=0.0)
        if self.ema_decay is not None:
            check_real("ema_decay", self.ema_decay, low=0.0, high=1.0, high_open=True)
        check_real("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        for name in ("conditional", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        if self.schedule not in ("cosine", "linear"):
            raise ValueError(f"schedule: expected 'cosine' or 'linear', got {self.schedule!r}")
        hidden = tuple(self.hidden)
        if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise ValueError(f"hidden: expected positive integers, got {self.hidden!r}")
        object.__setattr__(self, "hidden", hidden)
        if self.nan not in NAN_MODES:
            raise ValueError(f"nan: expected one of {NAN_MODES}, got {self.nan!r}")
        _check_solver(self.solver)
        if not isinstance(self.grid, str) or self.grid not in GRIDS:
            raise ValueError(f"grid: unknown grid {self.grid!r}; choices: {list(GRIDS)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, got {self.seed!r}")


def _samplers() -> list[str]:
    """The solvers TabDDPM samples with: ``polydiff.core.list_solvers()`` (samplers only, not
    ``ddim_inversion``) less the batched-time ones."""
    return [name for name in list_solvers() if name not in BATCHED_TIME_SOLVERS]


def _check_solver(solver) -> None:
    if isinstance(solver, str) and solver in BATCHED_TIME_SOLVERS:
        raise ValueError(f"solver: {solver!r} evaluates many time steps in one batch, which TabDDPM's categorical "
                         f"chain cannot follow; choices: {_samplers()}")
    if not isinstance(solver, str) or solver not in _samplers():
        raise ValueError(f"solver: unknown solver {solver!r}; choices: {_samplers()}")


def resolved_steps(config: TabDDPMConfig, rows: int) -> int:
    """The optimizer steps a fit on ``rows`` rows makes: ``config.steps``, or ``epochs`` passes clipped to
    [min_steps, max_steps]."""
    if config.steps is not None:
        return config.steps
    batch = min(config.batch_size, rows)
    return int(min(max(math.ceil(config.epochs * rows / batch), config.min_steps), config.max_steps))


_FORMAT = "polydiff-tabular/tabddpm-1"
_REQUIRED_KEYS = ("format", "config", "transformer", "label_counts", "clip")
_OPTIONAL_KEYS = ("weights",)  # the weights' digest; absent in saves written before it was recorded


class TabDDPM:
    """TabDDPM for a pandas DataFrame (sklearn/SDV verbs).

        model = TabDDPM(steps=3000).fit(df, target="y")
        synthetic = model.sample(1000, seed=0)            # same columns, order, dtypes and levels as df
        model.sample(10, conditions={"y": "yes"})           # class-conditional rows
        model.save_pretrained("model/"); TabDDPM.from_pretrained("model/")

    Keyword arguments are :class:`TabDDPMConfig` fields. ``device``: where the network trains and samples
    ("cpu", the default, or "cuda", "cuda:1"...); it is not saved with the model (``from_pretrained`` takes its
    own). The same seed gives the same rows on one device; CPU and CUDA draw different random numbers.
    """

    def __init__(self, config: TabDDPMConfig | None = None, *, device=None, **options):
        if config is not None and options:
            raise ValueError("options: give either a TabDDPMConfig or keyword options, not both")
        if config is not None and not isinstance(config, TabDDPMConfig):
            raise ValueError(f"config: expected a TabDDPMConfig, got {type(config).__name__}")
        fields = [f.name for f in dataclasses.fields(TabDDPMConfig)]
        unknown = [name for name in options if name not in fields]
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not an option of TabDDPM; options: {fields + ['device']}")
        self.config = config if config is not None else TabDDPMConfig(**options)
        self.device = _device(device)
        self.transformer: TableTransformer | None = None
        self.network = None

    # ------------------------------------------------------------------------------------------- fit

    def _schedule(self) -> DiscreteSchedule:
        maker = DiscreteSchedule.cosine if self.config.schedule == "cosine" else DiscreteSchedule.linear
        return maker(self.config.num_timesteps)

    def _build(self) -> None:
        transformer = self.transformer
        self.schedule = self._schedule()
        counts = transformer.num_classes
        self.mult = MultinomialDiffusion(counts, self.schedule.betas) if counts else None
        self.num_numeric = len(transformer.numeric_columns)
        width = self.num_numeric + (self.mult.width if self.mult else 0)
        labels = transformer.label_levels
        self.num_labels = len(labels) if (labels is not None and self.config.conditional) else 0
        self.network = None
        if width:
            self.network = MLPDenoiser(width, hidden=self.config.hidden,
                                       time_embedding_dim=self.config.time_embedding_dim,
                                       num_classes=self.num_labels, dropout=self.config.dropout)

    def _init_marginals(self, x_cat: np.ndarray) -> None:
        """Start the x0 logits of every categorical column at the log of its training frequencies (the output
        bias; +1 smoothing). With the plug-in posterior, a column that carries no other information is sampled
        exactly when its predicted x0 distribution equals its marginal, so this is the network's best start;
        from zero logits (uniform) a 90/10 column was still sampled at 76/24 after 600 steps."""
        if self.mult is None:
            return
        counts = [np.bincount(x_cat[:, c], minlength=k) + 1.0 for c, k in enumerate(self.mult.num_classes)]
        log_freq = np.log(np.concatenate([c / c.sum() for c in counts]))
        with torch.no_grad():
            self.network.head.bias[self.num_numeric:] = torch.as_tensor(log_freq, dtype=torch.float32)

    def fit(self, df: pd.DataFrame, target=None, categorical=None, discrete=None) -> TabDDPM:
        """Fit on ``df``. ``target``: one column name, the column to condition on (categorical, with
        ``conditional=True``) or just model (numeric, or ``conditional=False``); ``categorical`` / ``discrete``:
        lists of column names that win over dtype detection. Values a saved model cannot hold (dates, lists in
        a cell...) are refused here, naming the column."""
        from polydiff.core.training import TrainConfig, Trainer

        config = self.config
        self.transformer = TableTransformer(target, categorical, discrete, nan=config.nan,
                                            target_as_label=config.conditional).fit(df)
        x_num, x_cat, y = self.transformer.transform(df)
        if not np.isfinite(x_num).all():
            raise ValueError("df: the quantile transform produced non-finite values")
        torch.manual_seed(config.seed)  # before the network is built: its initial weights come from this seed
        self._build()
        labels = self.transformer.label_levels
        self.label_counts = (np.bincount(y, minlength=len(labels)).tolist() if labels is not None else [])
        # None where every score is 0 (a numeric column holding one value besides NaN): nothing to clip
        self.clip = float(np.abs(x_num).max()) or None if x_num.size else None
        if self.network is None:
            return self
        self._init_marginals(x_cat)
        data = _Rows(torch.from_numpy(x_num), torch.from_numpy(x_cat),
                     torch.from_numpy(y) if y is not None else torch.zeros(len(df), dtype=torch.long))
        steps = resolved_steps(config, len(df))
        train = TrainConfig(steps=steps, batch_size=min(config.batch_size, len(df)), lr=config.lr,
                            weight_decay=config.weight_decay, ema_decay=config.ema_decay, grad_clip=None,
                            lr_schedule="linear", seed=config.seed, progress=config.progress,
                            device=str(self.device), log_every=max(1, steps // 20))
        trainer = Trainer(self.network, _Loss(self.schedule, self.mult, self.num_labels > 0), data, train)
        trainer.fit()
        self.network = trainer.ema_model.eval()
        self.history = {"steps": trainer.step}
        return self

    # ---------------------------------------------------------------------------------------- sample

    def _labels(self, n: int, conditions, generator: torch.Generator) -> np.ndarray | None:
        levels = self.transformer.label_levels
        target = self.transformer.target
        if conditions is not None and not isinstance(conditions, dict):
            raise ValueError(f"conditions: expected a dict {{column: value or values}}, got "
                             f"{type(conditions).__name__}")
        if conditions:
            unknown = [c for c in conditions if target is None or not c == target]
            if unknown or target is None:
                raise ValueError(f"conditions: only the categorical target ({target!r}) can be conditioned on; got "
                                 f"{list(conditions)}")
            if levels is None or not self.num_labels:
                why = (f"the target {target!r} is numeric" if self.transformer.specs[target].kind != "categorical"
                       else "the model was fit with conditional=False (its target is sampled jointly with the "
                            "other columns); fit TabDDPM(conditional=True) for class-conditional rows")
                raise ValueError(f"conditions: cannot fix {target!r}: {why}")
            (value,) = conditions.values()
            per_row = isinstance(value, (list, np.ndarray, pd.Series, pd.Index))  # anything else (a tuple too)
            values = list(value) if per_row else [value] * n                        # is one value for every row
            if len(values) != n:
                raise ValueError(f"conditions: {len(values)} values for {target!r}, expected 1 or n={n}")
            return self.transformer.label_codes(values)
        if levels is None:
            return None
        probs = torch.tensor(self.label_counts, dtype=torch.float64, device=generator.device)
        return torch.multinomial(probs / probs.sum(), n, replacement=True, generator=generator).cpu().numpy()

    def _check_sample_arguments(self, n, seed, steps, solver, batch_size, progress, solver_options) -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: expected a positive integer, got {n!r}")
        if seed is not None and not (_integer(seed) and 0 <= seed < 2**64):
            raise ValueError(f"seed: expected None or an integer in [0, 2**64), got {seed!r}")
        if steps is not None and not (_integer(steps) and 1 <= steps <= self.config.num_timesteps):
            raise ValueError(f"steps: expected None or an integer in [1, num_timesteps={self.config.num_timesteps}],"
                             f" got {steps!r}")
        if solver is not None:
            _check_solver(solver)
        if not (_integer(batch_size) and batch_size >= 1):
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        if progress is not None and not isinstance(progress, bool):
            raise ValueError(f"progress: expected None, True or False, got {progress!r}")
        reserved = [option for option in ("generator", "cond") if option in solver_options]
        if reserved:
            raise ValueError(f"{', '.join(reserved)}: set by TabDDPM itself (use seed= for the random numbers and "
                             "conditions= for the target)")
        check_options(list_solvers()[solver or self.config.solver], solver_options)

    @torch.no_grad()
    def sample(self, n: int, conditions: dict | None = None, seed: int | None = None, *, steps: int | None = None,
               solver: str | None = None, batch_size: int = 8192, progress: bool | None = None,
               **solver_options) -> pd.DataFrame:
        """``n`` synthetic rows as a DataFrame with the training frame's columns, order, dtypes and levels.

        conditions: ``{target: value}`` or ``{target: [n values]}`` (a list, array or Series; any other value,
        a tuple too, is one value for every row) for class-conditional rows of a ``conditional=True`` model; an
        unseen value, or None/NaN where the target had no missing values, raises ValueError. seed: same seed,
        same rows. steps / solver / solver_options: override the config's sampling choice.
        """
        if self.transformer is None:
            raise ValueError("sample: the model is not fitted; call fit(df) or from_pretrained(path) first")
        self._check_sample_arguments(n, seed, steps, solver, batch_size, progress, solver_options)
        n = int(n)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**62))
        y_all = self._labels(n, conditions, generator)
        steps = self.config.sample_steps if steps is None else int(steps)
        solver = self.config.solver if solver is None else solver
        progress = self.config.progress if progress is None else progress
        nums, cats = [], []
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            y = None if y_all is None else torch.from_numpy(np.asarray(y_all[start:start + size])).long()
            x_num, x_cat = self._sample_batch(size, y, generator, steps, solver, progress, solver_options)
            nums.append(x_num.cpu().numpy())
            cats.append(x_cat.cpu().numpy())
        x_num, x_cat = np.concatenate(nums), np.concatenate(cats)
        if not np.isfinite(x_num).all():
            raise RuntimeError("sample: the sampler produced non-finite values")
        return self.transformer.inverse_transform(x_num, x_cat, y_all)

    def _sample_batch(self, size, y, generator, steps, solver, progress, options):
        d, device = self.num_numeric, self.device
        if self.network is None:
            return torch.zeros(size, d), torch.zeros(size, 0, dtype=torch.long)
        x_cat = (self.mult.sample_prior(size, generator, device=device) if self.mult
                 else torch.zeros(size, 0, dtype=torch.long, device=device))
        joint = _JointModel(self.network, self.mult, self.schedule, x_cat,
                            y.to(device) if (self.num_labels and y is not None) else None, generator)
        noise = torch.randn(size, d, generator=generator, device=device)
        if d:
            # the x0 prediction is clipped to the range of the training scores: near t = 1 the cosine schedule's
            # alpha is ~1e-2, and eps -> x0 = (x - sigma eps) / alpha amplifies any eps error a hundredfold
            denoiser = Denoiser(joint, self.schedule, prediction="eps", clip_x0=self.clip)
            x_num = core_sample(denoiser, noise, solver=solver, steps=steps,
                                grid=self.config.grid, final_zero=True, progress=progress, generator=generator,
                                **options)  # every core solver takes generator= (deterministic ones ignore it)
        else:  # categorical only: walk the same grid with the network alone
            from polydiff.core.grids import make_grid

            grid = make_grid(self.schedule, steps, self.config.grid, final_zero=True, device=device)
            for t in grid[:-1]:
                joint(noise, self.schedule.model_input(t.expand(size)).to(torch.float32))
            x_num = noise
        return x_num, joint.finish()

    # ------------------------------------------------------------------------------------ persistence

    def save_pretrained(self, path) -> Path:
        """Write ``path/config.json`` (config, column spec, label counts, the weights' size and SHA-256) and
        ``path/model.safetensors`` (network weights and the quantile transformer); returns ``path``.

        All or nothing, through :class:`polydiff.core.pretrained.AtomicFiles`: the document is checked for JSON
        first (a value that cannot be written raises before anything on disk changes), both files are staged in
        ``path`` and renamed over the old ones, weights first; the recorded digest lets ``from_pretrained`` refuse
        a weights file that does not belong to its config.json (a save cut between the two renames). Other files
        in ``path`` are left alone; an existing regular file at ``path``, or a config.json there that a TabDDPM
        did not write, is refused.
        """

        if self.transformer is None:
            raise ValueError("save_pretrained: the model is not fitted")
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ValueError(f"path: {str(path)!r} is an existing file, not a folder; choose another path")
        _check_not_foreign(path / CONFIG_FILE, _FORMAT, "TabDDPM")
        spec, arrays = self.transformer.state()
        tensors = {f"transformer.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        if self.network is not None:
            tensors.update({f"network.{k}": v.detach().to("cpu").contiguous().clone()
                            for k, v in self.network.state_dict().items()})
        document = {"format": _FORMAT, "config": asdict(self.config), "transformer": spec,
                    "label_counts": self.label_counts, "clip": self.clip}
        return write_weights_and_document(path, tensors, document)

    @classmethod
    def from_pretrained(cls, path, *, device=None) -> TabDDPM:
        """Load a :meth:`save_pretrained` folder onto ``device`` (None: the CPU). Anything that is not such a
        folder (a missing, malformed or foreign config.json, weights that are truncated or belong to another
        save) raises ValueError naming the file."""

        path = Path(path)
        config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
        if not path.is_dir():
            raise ValueError(f"path: {str(path)!r} is not a folder (expected a TabDDPM save_pretrained folder)")
        if not config_file.is_file():
            raise ValueError(f"path: {str(path)!r} has no {CONFIG_FILE} (expected a TabDDPM save_pretrained folder)")
        document = _read_document(config_file, _FORMAT, "TabDDPM", _REQUIRED_KEYS, _OPTIONAL_KEYS)
        self = cls(_read_config(config_file, document["config"], TabDDPMConfig), device=device)
        # saves from before weight digests were recorded still load (the digest is then not checked)
        tensors, self.transformer = load_weights_and_transformer(config_file, weights_file, document, "TabDDPM",
                                                                 digest_required=False)
        labels = self.transformer.label_levels
        counts = document["label_counts"]
        if not (isinstance(counts, list) and all(_integer(c) and c >= 0 for c in counts)
                and len(counts) == (len(labels) if labels is not None else 0)):
            raise ValueError(f"{config_file}: label_counts: expected one count per target level, got {counts!r}")
        clip = document["clip"]
        if clip is not None and not (_real(clip) and clip > 0):
            raise ValueError(f"{config_file}: clip: expected None or a positive number, got {clip!r}")
        self.label_counts, self.clip = counts, clip
        self._build()
        if self.network is not None:
            try:
                self.network.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items()
                                              if k.startswith("network.")})
            except RuntimeError as error:
                raise ValueError(f"{weights_file}: the weights do not fit the network {config_file.name} describes "
                                 f"({error})") from error
            self.network = self.network.to(self.device).eval()
        return self
