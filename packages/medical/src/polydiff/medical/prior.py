"""A 2-D slice prior for inpainting and k-space reconstruction, unconditional and mask-conditional in one network.

``SlicePrior.fit(images, brains)`` trains a :class:`~polydiff.medical.models.SliceUNet` with core's ``Trainer``
and ``DiffusionLoss`` (VP cosine schedule, v prediction) on random crops of the training slices, each slice
mapped to [-1, 1] by its own 0.5 / 99.5 percentiles. With ``conditional=True`` (the default) the network also
sees two condition channels, the known image (zero where unknown) and the known-pixel mask, after "Multitask
Brain Tumor Inpainting with Diffusion Models" (Kim & Park, 2023): each training crop carries a seeded
tumour-shaped mask (1-12 % of the brain area, :func:`~polydiff.medical.inpainting.tumour_mask`) or, with
probability ``uncond_fraction``, an empty condition (nothing known), so the same model is an unconditional prior
(``SlicePrior.denoiser``, for core's RePaint / DDNM / DPS) and a direct inpainting model
(``SlicePrior.conditional_denoiser``, for any core solver). The bundled training set (:func:`training_set`) uses
only slices that no benchmark task evaluates on (:data:`TRAIN_SLICES` vs :data:`TEST_SLICES`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["PriorConfig", "SlicePrior", "check_sampling", "known_channel", "training_slices", "training_set",
           "test_slices", "validation_slices", "zero_filled_pair", "RECON_CHANNELS", "TRAIN_SLICES", "TEST_SLICES",
           "normalise", "denormalise", "load_prior", "SHIPPED", "WEIGHTS"]

TRAIN_SLICES = (0, 1, 2, 3, 4, 5)
RECON_CHANNELS = (16, 32, 64)  # the U-Net widths of the reconstruction-conditioned prior
TEST_SLICES = (6, 7, 8, 9)
WEIGHTS = Path(__file__).resolve().parent / "weights"
#: shipped priors: name -> folder under :data:`WEIGHTS` (each trained on :func:`training_set` only, by the bench's
#: recipe: ``polydiff medical train-prior --steps 1400`` and ``--task recon --steps 10000``, continued to
#: ``--steps 15000`` with the same ``--checkpoint-dir``)
SHIPPED = {"inpaint": "slice-prior", "recon": "recon-prior"}


def normalise(image: np.ndarray, region: np.ndarray | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """image -> 2 (image - p0.5) / (p99.5 - p0.5) - 1 with the percentiles inside ``region`` (default: all
    pixels); returns the mapped image and (low, high) for :func:`denormalise`."""
    values = image[region] if region is not None else image.reshape(-1)
    low, high = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    high = high if high > low else low + 1.0
    return 2 * (image - low) / (high - low) - 1, (low, high)


def denormalise(image: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    low, high = bounds
    return (np.asarray(image) + 1) / 2 * (high - low) + low


def training_slices(slices=TRAIN_SLICES) -> np.ndarray:
    """(count, 128, 128) float64 training images in [-1, 1]: see :func:`training_set`."""
    return training_set(slices)[0]


def _real_anatomy() -> list[tuple[np.ndarray, np.ndarray]]:
    """Every real brain slice that dipy installs besides ``S0_10slices``, resampled to 128 x 128, with its brain
    (Otsu's threshold, holes filled): the T1 coronal slice, the axial slices of ``aniso_vox`` (4 x 4 x 5 mm) and
    ``test_piesno`` (a noisy DWI volume), each kept when its brain covers at least 8 % of the slice."""
    from scipy.ndimage import binary_fill_holes, zoom
    from skimage.filters import threshold_otsu

    from .data import _nibabel, dipy_file, load_t1_slice

    slices = [load_t1_slice()]
    for name in ("aniso_vox.nii.gz", "test_piesno.nii.gz"):
        volume = np.asarray(_nibabel().load(str(dipy_file(name))).dataobj, dtype=np.float64)
        slices += [volume[:, :, z] for z in range(volume.shape[2])]
    out = []
    for image in slices:
        image = zoom(image, (128 / image.shape[0], 128 / image.shape[1]), order=1)
        if np.ptp(image) <= 0:
            continue
        brain = binary_fill_holes(image > threshold_otsu(image))
        if brain.mean() >= 0.08:
            out.append((image, brain))
    return out


def training_set(slices=TRAIN_SLICES, contrasts: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(images (count, 128, 128) float64 in [-1, 1], brain masks (count, 128, 128) bool): the real b0 slices
    ``slices`` of dipy's ``S0_10slices``, ``contrasts`` noise-free phantom DWI volumes at those slices (evenly
    spaced over the 64: b0, b = 1000 / 2000 / 3500 contrasts of the same anatomy) and every other real brain
    slice dipy installs (:func:`_real_anatomy`: the T1 slice, ``aniso_vox``, ``test_piesno``), each normalised
    by its own percentiles. Nothing from the held-out :data:`TEST_SLICES` of ``S0_10slices`` is used."""
    from .data import load_b0_slices, make_phantom

    if any(z in TEST_SLICES for z in slices):
        raise ValueError(f"slices: {tuple(slices)} overlaps the held-out test slices {TEST_SLICES}")
    phantom = make_phantom(20.0, seed=0)
    b0 = load_b0_slices()
    volumes = np.linspace(0, phantom.clean.shape[-1] - 1, contrasts).round().astype(int)
    images = [b0[:, :, z] for z in slices] + [phantom.clean[:, :, z, v] for z in slices for v in volumes]
    brains = [phantom.mask[:, :, z] for z in slices] + [phantom.mask[:, :, z] for z in slices for _ in volumes]
    for image, brain in _real_anatomy():
        images.append(image)
        brains.append(brain)
    return (np.stack([normalise(image.astype(np.float64))[0] for image in images]),
            np.stack(brains).astype(bool))


def test_slices(slices=TEST_SLICES, volumes=(0, 20, 45)) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images (count, 128, 128) float64 in data units, brain masks (count, 128, 128), names): real b0 slices and
    phantom DWI volumes at held-out slices (``volumes`` of the 64: b0, b = 1000, b = 2000)."""
    from .data import make_phantom

    phantom = make_phantom(20.0, seed=0)
    images, masks, names = [], [], []
    for z in slices:
        for v in volumes:
            if phantom.mask[:, :, z].sum() < 200:
                continue
            images.append(phantom.clean[:, :, z, v].astype(np.float64))
            masks.append(phantom.mask[:, :, z])
            names.append(f"{'b0' if v == 0 else 'dwi'}-z{z}-v{v}")
    return np.stack(images), np.stack(masks), names


def validation_slices(slices=(2, 5), volumes=(13, 33)) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Like :func:`test_slices`, for choosing settings without touching the test slices: noise-free phantom DWI
    volumes at training slices (``slices`` of :data:`TRAIN_SLICES`) in contrasts that :func:`training_set` leaves
    out (its 8 contrasts are volumes 0, 9, 18, 27, 36, 45, 54, 63; 13 is b = 1000, 33 is b = 2000). The anatomy
    is the training anatomy: a check of fit and settings, not of generalisation."""
    from .data import make_phantom

    if any(z not in TRAIN_SLICES for z in slices):
        raise ValueError(f"slices: expected training slices {TRAIN_SLICES}, got {tuple(slices)}")
    phantom = make_phantom(20.0, seed=0)
    images = [phantom.clean[:, :, z, v].astype(np.float64) for z in slices for v in volumes]
    masks = [phantom.mask[:, :, z] for z in slices for _ in volumes]
    return np.stack(images), np.stack(masks), [f"dwi-z{z}-v{v}" for z in slices for v in volumes]


@dataclass(frozen=True)
class PriorConfig:
    """train_steps, batch_size, crop, lr: Trainer budget on crop x crop patches; channels: U-Net widths;
    prediction: the network's target, "v" (alpha eps - sigma x0: at low noise the x0 estimate stays close to
    x_t, which plug-and-play and data-consistent samplers need) or "x0"; conditional: add the (known image,
    known mask) condition channels; fill: what the known-image channel holds inside the hole, "harmonic" (the
    Laplace fill from the hole's border) or "zero"; uncond_fraction: share of
    training crops with an empty condition; seed; device (None: CUDA when available); checkpoint_dir: Trainer
    checkpoints (a rerun resumes there; a larger ``train_steps`` continues a finished run from its last
    checkpoint, the cosine learning-rate schedule stretched to the new length); checkpoint_every (None: a tenth
    of train_steps, at least 50); task: "inpaint" (the condition above) or "recon" (a reconstruction-conditioned
    model: one condition channel, the zero-filled image of the whole slice undersampled by a random Cartesian line
    mask at one of ``accelerations``, then a random crop of both; image and condition normalised by the
    zero-filled image's percentiles as :func:`~polydiff.medical.recon.reconstruct` does); num_workers:
    data-loading processes; clip_x0: None, or the bound the sampling denoisers clip their x0 estimates to
    (slices normalised by their 0.5 / 99.5 percentiles reach 3-8 in bright CSF, so a bound near 1 caps what the
    prior can return)."""

    train_steps: int = 1500
    batch_size: int = 8
    crop: int = 64
    lr: float = 1e-3
    channels: tuple[int, ...] = (16, 32, 64)
    prediction: str = "v"
    conditional: bool = True
    fill: str = "harmonic"
    uncond_fraction: float = 0.5
    seed: int = 0
    device: str | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None
    task: str = "inpaint"
    accelerations: tuple[float, ...] = (4.0, 8.0)
    num_workers: int = 0
    clip_x0: float | None = None

    def __post_init__(self):
        for name, minimum in (("train_steps", 1), ("batch_size", 1), ("crop", 8), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
        every = self.checkpoint_every
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ValueError(f"checkpoint_every: expected None or an integer >= 1, got {every!r}")
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr: expected a finite value > 0, got {self.lr!r}")
        if self.prediction not in ("v", "x0"):
            raise ValueError(f"prediction: expected 'v' or 'x0', got {self.prediction!r}")
        if self.clip_x0 is not None and not (isinstance(self.clip_x0, (int, float)) and self.clip_x0 > 0):
            raise ValueError(f"clip_x0: expected None or a value > 0, got {self.clip_x0!r}")
        if self.task not in ("inpaint", "recon"):
            raise ValueError(f"task: expected 'inpaint' or 'recon', got {self.task!r}")
        if not self.accelerations or any(not isinstance(a, (int, float)) or not a >= 1 for a in self.accelerations):
            raise ValueError(f"accelerations: expected values >= 1, got {self.accelerations!r}")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers: expected an integer >= 0, got {self.num_workers!r}")
        if self.fill not in ("harmonic", "zero"):
            raise ValueError(f"fill: expected 'harmonic' or 'zero', got {self.fill!r}")
        if not isinstance(self.uncond_fraction, (int, float)) or not 0 <= self.uncond_fraction <= 1:
            raise ValueError(f"uncond_fraction: expected a value in [0, 1], got {self.uncond_fraction!r}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "accelerations", tuple(float(a) for a in self.accelerations))


def check_sampling(steps, num_samples, t_start) -> None:
    """The sampling arguments that inpainting and reconstruction share: ValueError naming the bad one."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected an integer >= 1, got {steps!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples: expected an integer >= 1, got {num_samples!r}")
    if t_start is not None and not (isinstance(t_start, (int, float)) and 0 < t_start <= 1):
        raise ValueError(f"t_start: expected None or a time in (0, 1], got {t_start!r}")


def known_channel(image: np.ndarray, hole: np.ndarray, fill: str) -> np.ndarray:
    """The condition's known-image channel: ``image`` outside ``hole`` and, inside it, 0 (fill "zero") or the
    harmonic fill from the hole's border (fill "harmonic")."""
    from .peers import inpaint_peer

    if fill == "harmonic":
        return inpaint_peer("harmonic", image, hole)
    return np.where(hole, 0.0, image)


class _Crops(torch.utils.data.Dataset):
    """Random crops (flipped at random along each axis and transposed). Conditional: items (crop, {"cond": (2, c,
    c)}) with the known-image channel (:func:`known_channel`) and known mask of a tumour-shaped region drawn on
    the whole slice (the crop is placed around it), or an empty condition with probability ``uncond_fraction``."""

    def __init__(self, images: Tensor, brains: np.ndarray | None, crop: int, length: int, seed: int,
                 conditional: bool = False, uncond_fraction: float = 0.5, fill: str = "zero"):
        self.images, self.crop, self.length, self.seed, self.draws = images, crop, length, seed, 0
        self.brains, self.conditional, self.uncond_fraction, self.fill = brains, conditional, uncond_fraction, fill

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        from .inpainting import tumour_mask

        self.draws += 1
        generator = torch.Generator().manual_seed(hash((self.seed, index, self.draws)) % 2**62)
        k = int(torch.randint(self.images.shape[0], (1,), generator=generator))
        height, width = self.images.shape[-2:]
        known = torch.zeros((1, height, width), dtype=torch.bool)
        source = None
        inpainting = self.conditional and bool(torch.rand((), generator=generator) >= self.uncond_fraction)
        if inpainting:
            fraction = float(0.01 + 0.11 * torch.rand((), generator=generator))
            hole = tumour_mask(self.brains[k], fraction, seed=int(torch.randint(2**31, (1,), generator=generator)))
            rows, cols = np.nonzero(hole)
            known = ~torch.from_numpy(hole)[None]
            source = torch.from_numpy(known_channel(self.images[k, 0].double().numpy(), hole, self.fill))[None]
            low_i, high_i = max(0, int(rows.max()) - self.crop + 1), min(height - self.crop, int(rows.min()))
            low_j, high_j = max(0, int(cols.max()) - self.crop + 1), min(width - self.crop, int(cols.min()))
            i = int(torch.randint(low_i, max(low_i, high_i) + 1, (1,), generator=generator))
            j = int(torch.randint(low_j, max(low_j, high_j) + 1, (1,), generator=generator))
        else:
            i = int(torch.randint(height - self.crop + 1, (1,), generator=generator))
            j = int(torch.randint(width - self.crop + 1, (1,), generator=generator))
        crop = self.images[k, :, i:i + self.crop, j:j + self.crop]
        known = known[:, i:i + self.crop, j:j + self.crop].to(crop.dtype)
        given = (torch.zeros_like(crop) if source is None
                 else source[:, i:i + self.crop, j:j + self.crop].to(crop.dtype))
        if not inpainting:
            known = torch.zeros_like(crop)
        for axis in (-1, -2):
            if bool(torch.rand((), generator=generator) < 0.5):
                crop, known, given = crop.flip(axis), known.flip(axis), given.flip(axis)
        if bool(torch.rand((), generator=generator) < 0.5):
            crop, known, given = crop.transpose(-1, -2), known.transpose(-1, -2), given.transpose(-1, -2)
        if not self.conditional:
            return crop
        return crop, {"cond": torch.cat([given, known])}


def zero_filled_pair(image: np.ndarray, line_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(target, condition) for the reconstruction-conditioned model: the zero-filled image A^+ A ``image`` (H, W)
    with A core's SubsampledFourier on the rows ``line_mask`` (unshifted order), and both mapped by the affine map that takes the
    zero-filled image's 0.5 / 99.5 percentiles to [-1, 1] (:func:`normalise`), the map that
    :func:`~polydiff.medical.recon.reconstruct` applies to measured data."""
    from polydiff.core.inverse import SubsampledFourier

    operator = SubsampledFourier(torch.as_tensor(np.asarray(line_mask)), (1, *image.shape))
    x = torch.from_numpy(np.asarray(image, dtype=np.float64))[None, None]
    zero = operator.pinv(operator.forward(x))[0, 0].numpy()
    condition, (low, high) = normalise(zero)
    return 2 * (image - low) / (high - low) - 1, condition


class _Undersampled(torch.utils.data.Dataset):
    """Whole slices, flipped and transposed at random, each undersampled by a fresh random Cartesian line mask
    (core's ``fourier_line_mask``, 8 % centre lines) at one of ``accelerations``: items (target, {"cond":
    zero-filled}) as :func:`zero_filled_pair` maps them, cropped at random to ``crop`` x ``crop`` (None: whole)."""

    def __init__(self, images: np.ndarray, length: int, seed: int, accelerations: tuple[float, ...],
                 crop: int | None = None):
        self.images, self.length, self.seed, self.accelerations, self.draws = images, length, seed, accelerations, 0
        self.crop = crop

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        from polydiff.core.inverse import fourier_line_mask

        self.draws += 1
        rng = np.random.default_rng(hash((self.seed, index, self.draws)) % 2**62)
        image = self.images[int(rng.integers(len(self.images)))].astype(np.float64)
        if rng.random() < 0.5:
            image = image[::-1]
        if rng.random() < 0.5:
            image = image[:, ::-1]
        if rng.random() < 0.5:
            image = image.T
        acceleration = self.accelerations[int(rng.integers(len(self.accelerations)))]
        lines = fourier_line_mask(image.shape[0], acceleration, 0.08, "random", int(rng.integers(2**31))).numpy()
        target, condition = zero_filled_pair(np.ascontiguousarray(image), lines)
        if self.crop is not None and self.crop < min(image.shape):
            i, j = (int(rng.integers(n - self.crop + 1)) for n in image.shape)
            target, condition = (np.ascontiguousarray(a[i:i + self.crop, j:j + self.crop]) for a in (target, condition))
        return (torch.from_numpy(target).float()[None], {"cond": torch.from_numpy(condition).float()[None]})


class _Unconditional(torch.nn.Module):
    """A conditional slice network with an empty condition (nothing known): the unconditional prior."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, t):
        return self.model(x, t, cond=torch.zeros((x.shape[0], 2) + x.shape[2:], dtype=x.dtype, device=x.device))


class SlicePrior:
    """An unconditional diffusion prior over 2-D slices in [-1, 1]: ``fit``, ``denoiser``, ``save_pretrained`` /
    ``from_pretrained`` (safetensors + JSON through core.pretrained)."""

    def __init__(self, config: PriorConfig | None = None, **options):
        if config is not None and not isinstance(config, PriorConfig):
            raise ValueError(f"config: expected a PriorConfig, got {type(config).__name__}")
        self.config = PriorConfig(**{**(asdict(config) if config else {}), **options})
        self.model = None

    @property
    def schedule(self):
        from polydiff.core import VPCosineSchedule

        return VPCosineSchedule()

    def fit(self, images, brains=None, *, progress: bool = False) -> SlicePrior:
        """Train on images (count, H, W) already in [-1, 1] (see :func:`normalise`); brains: (count, H, W) bool
        regions where the conditional model's training masks are drawn (default: every pixel). Returns self."""
        from polydiff.core.losses import DiffusionLoss
        from polydiff.core.training import TrainConfig, Trainer

        from .models import SliceUNet

        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 3 or not np.isfinite(images).all():
            raise ValueError(f"images: expected finite (count, height, width), got shape {images.shape}")
        config = self.config
        if brains is None:
            brains = np.ones(images.shape, dtype=bool)
        brains = np.asarray(brains, dtype=bool)
        if brains.shape != images.shape or (config.conditional and (brains.sum((1, 2)) < 16).any()):
            raise ValueError(f"brains: expected the images' shape {images.shape} with >= 16 pixels per slice, got "
                             f"{brains.shape}")
        crop = min(config.crop, (min(images.shape[1:]) // 4) * 4)
        torch.manual_seed(config.seed)
        recon = config.task == "recon"
        network = SliceUNet(cond_channels=(1 if recon else 2) if config.conditional else 0, channels=config.channels)
        if crop % network.multiple or (recon and any(n % network.multiple for n in images.shape[1:])):
            raise ValueError(f"images: slices of {images.shape[1:]} are too small for the prior's U-Net")
        if recon and not config.conditional:
            raise ValueError("conditional: task 'recon' needs conditional=True")
        if recon:
            data = _Undersampled(images, config.train_steps * config.batch_size, config.seed, config.accelerations,
                                 crop)
        else:
            data = _Crops(torch.from_numpy(images)[:, None], brains, crop, config.train_steps * config.batch_size,
                          config.seed, conditional=config.conditional, uncond_fraction=config.uncond_fraction,
                          fill=config.fill)
        train = TrainConfig(steps=config.train_steps, batch_size=config.batch_size, lr=config.lr,
                            lr_schedule="cosine", warmup_steps=min(100, config.train_steps // 10), ema_decay=0.999,
                            seed=config.seed, device=config.device, progress=progress,
                            checkpoint_dir=config.checkpoint_dir, num_workers=config.num_workers,
                            checkpoint_every=config.checkpoint_every or max(50, config.train_steps // 10),
                            log_every=max(1, config.train_steps // 20))
        trainer = Trainer(network, DiffusionLoss(self.schedule, prediction=config.prediction), data, train).fit()
        self.model = trainer.ema_model.eval()
        return self

    def _require_model(self):
        if self.model is None:
            raise ValueError("prior: not fitted; call fit() or from_pretrained() first")
        return self.model

    @property
    def multiple(self) -> int:
        """What the network's input sides must be multiples of (its down-sampling factor)."""
        return self._require_model().multiple

    @property
    def conditional(self) -> bool:
        """Whether the network has the inpainting condition (known image, known mask)."""
        return self._require_model().cond_channels > 0 and self.config.task == "inpaint"

    @property
    def denoiser(self):
        """The unconditional prior (a conditional network with an empty condition)."""
        from polydiff.core import Denoiser

        model = self._require_model()
        if self.config.task == "recon":
            raise ValueError("prior: a reconstruction-conditioned model (task 'recon') has no unconditional mode; "
                             "use conditional_denoiser")
        return Denoiser(_Unconditional(model) if model.cond_channels else model, self.schedule,
                        prediction=self.config.prediction, clip_x0=self.config.clip_x0)

    @property
    def conditional_denoiser(self):
        """The conditional model: call with ``cond={"cond": (batch, 2, H, W)}`` (known image, known mask) or, for
        task "recon", ``(batch, 1, H, W)`` (the normalised zero-filled image)."""
        from polydiff.core import Denoiser

        if self._require_model().cond_channels == 0:
            raise ValueError("prior: trained without the inpainting condition (conditional=False)")
        return Denoiser(self._require_model(), self.schedule, prediction=self.config.prediction,
                        clip_x0=self.config.clip_x0)

    def save_pretrained(self, directory: str | Path) -> Path:
        return self._require_model().save_pretrained(directory, metadata={"prior": asdict(self.config)})

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str = "cpu") -> SlicePrior:
        from polydiff.core.pretrained import read_config

        from .models import SliceUNet

        document = read_config(directory)
        settings = {"fill": "zero", "prediction": "x0", **document["metadata"].get("prior", {})}
        prior = cls(PriorConfig(**{k: tuple(v) if k in ("channels", "accelerations") else v
                                   for k, v in settings.items()}))
        # frozen like a fitted prior's network (the Trainer's EMA copy): on some CPUs the convolutions take
        # another kernel when the weights require gradients, and the outputs then differ in the last bit
        prior.model = SliceUNet.from_pretrained(directory, device=device).requires_grad_(False)
        return prior


def load_prior(name: str | Path = "inpaint", *, device: str = "cpu") -> SlicePrior:
    """A prior that ships inside the package (nothing is downloaded): "inpaint" (the slice prior: mask-conditional
    inpainting and the unconditional prior of RePaint / DDNM / DPS / DiffPIR) or "recon" (the
    reconstruction-conditioned prior of ``reconstruct(method="conditional")``); or a folder written by
    ``save_pretrained`` / ``polydiff medical train-prior``. Both shipped priors were trained on the bundled 128 x 128
    brain slices of :func:`training_set` (never on the bench's test slices); other anatomy or matrix sizes are
    outside what they have seen, so train your own (``SlicePrior(...).fit``) for those."""
    if isinstance(name, str) and name in SHIPPED:
        folder = WEIGHTS / SHIPPED[name]
    elif isinstance(name, (str, Path)) and Path(name).is_dir():
        folder = Path(name)
    else:
        raise ValueError(f"name: expected a shipped prior ({', '.join(SHIPPED)}) or a folder written by "
                         f"save_pretrained, got {name!r}")
    if not (folder / "config.json").is_file():
        raise ValueError(f"name: no saved prior in {str(folder)!r} (config.json missing)")
    return SlicePrior.from_pretrained(folder, device=device)
