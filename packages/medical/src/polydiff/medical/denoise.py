"""Self-supervised dMRI denoising after DDM2 (Xiang et al., 2023, "DDM2: Self-Supervised Diffusion MRI Denoising
with Generative Diffusion Models", ICLR), in three stages on one scan, with no clean data anywhere:

1. **J-invariant noise model** (Patch2Self, Fadnavis et al., 2020): each volume j is regressed (ridge, closed
   form) on the other volumes' values in a (2r+1)^3 neighbourhood, so the estimate x1_j never sees y_j's noise.
2. **Markov-chain alignment**: each slice gets the diffusion time t whose noise level sigma(t) / alpha(t) equals
   the standard deviation of its stage-1 residual y - x1 (in model units), DDM2's stage II. The residual's
   variance is the noise variance (from differences of repeated b0 volumes) plus the stage-1 error's; the latter
   sets the condition's training perturbation below.
3. **Diffusion model on stage-1 outputs**: a 2-D slice U-Net (MONAI ``DiffusionModelUNet``) is trained with
   core's ``Trainer`` and ``DiffusionLoss`` on the stage-1 slices as x0, conditioned on a copy of x0 perturbed
   by noise of the stage-1 error's size (the model learns to fuse a noisy slice with the cross-volume estimate);
   then the noisy slice alpha(t) y, started at its matched time, is sampled to t = 0 by any core solver with
   x1 as the condition.
4. **Rician bias correction**: stages 1-3 estimate the mean of the magnitude data, E[y] = sigma sqrt(pi / 2)
   L_{1/2}(-S^2 / (2 sigma^2)), which lies above the true signal S where S is comparable to the noise (high b,
   CSF, background); the estimate is mapped back through that mean function (Koay & Basser, 2006, "Analytically
   exact correction scheme for signal extraction from noisy magnitude MR signals"), with sigma from the
   differences of repeated b0 volumes.

``denoise_dwi(data, bvals)`` runs the whole pipeline: (X, Y, Z, N) in, the same shape and dtype out, every volume
(b0 included) kept in order.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from .models import pad_to_multiple

__all__ = ["DenoiseConfig", "denoise_dwi", "stage1_j_invariant", "match_times", "immerkaer_sigma",
           "check_dwi", "rician_mean", "rician_correct"]


@dataclass(frozen=True)
class DenoiseConfig:
    """Budgets and options of :func:`denoise_dwi` (the defaults finish a 128x128x10x64 scan in about 5 minutes
    on 2 CPU cores).

    patch_radius: stage-1 neighbourhood radius r (0: the voxel itself, as dipy's Patch2Self default).
    ridge: stage-1 ridge penalty, relative to the mean diagonal of the normal matrix.
    local_mean: stage 1 also regresses on the other volumes' 3 x 3 x 3 box means.
    train_steps, batch_size, crop, lr: stage-3 training (Trainer steps, crops of crop x crop pixels).
    channels: the U-Net widths. solver, sample_steps: the core solver and its steps from the matched time.
    max_time: the schedule's t_max (training covers t <= max_time: only the low noise levels denoising needs).
    b0_threshold: b-values at or below it are b0 volumes (denoised as well, returned in place).
    rician: map the denoised mean back to the signal through the Rician mean function (stage 4).
    seed: training and sampling seed. device: "cpu", "cuda" or None (CUDA when available).
    """

    patch_radius: int = 0
    ridge: float = 1e-3
    local_mean: bool = True
    train_steps: int = 400
    batch_size: int = 16
    crop: int = 32
    lr: float = 2e-3
    channels: tuple[int, ...] = (16, 32, 32)
    solver: str = "ddim"
    sample_steps: int = 1
    max_time: float = 0.6
    b0_threshold: float = 50.0
    rician: bool = True
    seed: int = 0
    device: str | None = None

    def __post_init__(self):
        def integer(name, minimum):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")

        for name, minimum in (("patch_radius", 0), ("train_steps", 1), ("batch_size", 1), ("crop", 8),
                              ("sample_steps", 1), ("seed", 0)):
            integer(name, minimum)
        if self.patch_radius > 2:
            raise ValueError(f"patch_radius: expected 0, 1 or 2, got {self.patch_radius}")
        if self.crop % 4:
            raise ValueError(f"crop: expected a multiple of 4, got {self.crop}")
        for name in ("ridge", "lr"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: expected a finite value > 0, got {value!r}")
        if not 0.05 <= self.max_time <= 0.9946:
            raise ValueError(f"max_time: expected a value in [0.05, 0.9946], got {self.max_time}")
        if not math.isfinite(self.b0_threshold) or self.b0_threshold < 0:
            raise ValueError(f"b0_threshold: expected a finite value >= 0, got {self.b0_threshold}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        from polydiff.core import list_solvers

        if self.solver not in list_solvers():
            raise ValueError(f"solver: unknown solver {self.solver!r}; choices: {list(list_solvers())}")


def check_dwi(data, bvals, mask=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate a DWI (X, Y, Z, N), its b-values (N,) and an optional mask (X, Y, Z); ValueError names the argument."""
    array = np.asarray(data)
    if array.ndim != 4:
        raise ValueError(f"data: expected a 4-D DWI (X, Y, Z, volumes), got {array.ndim}-D shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"data: expected a real numeric array, got dtype {array.dtype}")
    if min(array.shape[:3]) < 1 or array.shape[3] < 3:
        raise ValueError(f"data: expected at least 3 volumes and a non-empty grid, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError("data: contains NaN or inf voxels")
    bvals = np.asarray(bvals, dtype=np.float64).reshape(-1) if np.ndim(bvals) else np.asarray([bvals], float)
    if bvals.shape != (array.shape[3],):
        raise ValueError(f"bvals: expected {array.shape[3]} b-values (one per volume), got {bvals.size}")
    if not np.isfinite(bvals).all() or (bvals < 0).any():
        raise ValueError("bvals: expected finite b-values >= 0")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != array.shape[:3]:
            raise ValueError(f"mask: expected shape {array.shape[:3]} (the DWI's grid), got {mask.shape}")
        mask = mask.astype(bool)
        if not mask.any():
            raise ValueError("mask: selects no voxel")
    return array, bvals, mask


def _features(data: Tensor, radius: int) -> Tensor:
    """(V, N * (2r+1)^3) neighbourhood features of every voxel, edge-padded: data (X, Y, Z, N)."""
    if radius == 0:
        return data.reshape(-1, data.shape[-1])
    padded = torch.nn.functional.pad(data.permute(3, 0, 1, 2)[None], (radius,) * 6, mode="replicate")[0]
    x, y, z = data.shape[:3]
    shifts = [padded[:, i:i + x, j:j + y, k:k + z] for i in range(2 * radius + 1)
              for j in range(2 * radius + 1) for k in range(2 * radius + 1)]
    return torch.stack(shifts, dim=-1).permute(1, 2, 3, 0, 4).reshape(x * y * z, -1)


def stage1_j_invariant(data: np.ndarray, mask: np.ndarray | None = None, *, patch_radius: int = 0,
                       ridge: float = 1e-3, local_mean: bool = True) -> np.ndarray:
    """Stage 1: x1_j = [1, features of the other volumes] w_j, w_j by ridge regression of y_j over the voxels in
    ``mask`` (every voxel when None). J-invariant: x1_j does not depend on y_j. data: (X, Y, Z, N) float; the
    normal matrix of all volumes' features is formed once and each volume's block is removed from it.
    local_mean: add each volume's 3 x 3 x 3 box mean as a feature (still J-invariant: volume j's own mean is
    removed with the rest of its block)."""
    values = torch.as_tensor(np.asarray(data, dtype=np.float64))
    n = values.shape[-1]
    scale = values.abs().mean().clamp_min(1e-12)
    values = values / scale
    features = _features(values, patch_radius)  # (V, N * P): volume v's P neighbourhood values at v P ...
    if local_mean:
        from scipy.ndimage import uniform_filter

        box = torch.as_tensor(uniform_filter(values.numpy(), size=(3, 3, 3, 1), mode="nearest"))
        features = torch.cat([features.reshape(-1, n, features.shape[1] // n), box.reshape(-1, n, 1)], dim=2)
        features = features.reshape(features.shape[0], -1)
    per_volume = features.shape[1] // n
    target = values.reshape(-1, n)
    selected = torch.as_tensor(mask.reshape(-1)) if mask is not None else slice(None)
    design = torch.cat([torch.ones(features.shape[0], 1, dtype=features.dtype), features], dim=1)
    fit_design, fit_target = design[selected], target[selected]
    gram = fit_design.T @ fit_design
    cross = fit_design.T @ fit_target
    penalty = ridge * gram.diagonal()[1:].mean()
    volume_of = torch.cat([torch.tensor([-1]), torch.arange(features.shape[1]) // per_volume])
    out = torch.empty_like(target)
    for j in range(n):
        keep = volume_of != j
        block = gram[keep][:, keep] + penalty * torch.diag((volume_of[keep] >= 0).to(gram.dtype))
        weights = torch.linalg.solve(block, cross[keep, j])
        out[:, j] = design[:, keep] @ weights
    return (out.reshape(values.shape) * scale).numpy()


def immerkaer_sigma(image: np.ndarray) -> float:
    """Gaussian noise std of a 2-D image by Immerkaer (1996, "Fast Noise Variance Estimation"):
    sigma = sqrt(pi / 2) / (6 (W - 2)(H - 2)) sum |I * L|, L = [[1, -2, 1], [-2, 4, -2], [1, -2, 1]]."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < 3:
        raise ValueError(f"image: expected a 2-D image of at least 3 x 3, got shape {image.shape}")
    laplacian = (image[:-2, :-2] - 2 * image[:-2, 1:-1] + image[:-2, 2:] - 2 * image[1:-1, :-2]
                 + 4 * image[1:-1, 1:-1] - 2 * image[1:-1, 2:] + image[2:, :-2] - 2 * image[2:, 1:-1]
                 + image[2:, 2:])
    return float(math.sqrt(math.pi / 2) * np.abs(laplacian).sum() / (6 * laplacian.size))


def _noise_std(slices: Tensor, is_b0: np.ndarray, mask: np.ndarray | None) -> Tensor:
    """Per-slice noise std (N * Z,) of slices (N, Z, H, W): from differences of repeated b0 volumes,
    std(b0_a - b0_b) / sqrt(2) inside the mask, when the scan has two or more (the same level for every volume of
    that slice); else Immerkaer's estimate of each slice."""
    n, z_size = slices.shape[:2]
    b0 = np.flatnonzero(is_b0)
    if len(b0) < 2:
        return torch.tensor([[immerkaer_sigma(slices[v, z].numpy()) for z in range(z_size)] for v in range(n)],
                            dtype=torch.float64)
    levels = []
    for z in range(z_size):
        region = torch.ones(slices.shape[-2:], dtype=torch.bool) if mask is None else torch.as_tensor(mask[z])
        if int(region.sum()) < 16:
            region = torch.ones(slices.shape[-2:], dtype=torch.bool)
        differences = [(slices[a, z] - slices[b, z])[region] for a, b in zip(b0[:-1], b0[1:], strict=True)]
        levels.append(float(torch.cat(differences).std()) / math.sqrt(2))
    return torch.tensor(levels, dtype=torch.float64)[None].expand(n, z_size).clone()


def rician_mean(signal, sigma) -> np.ndarray:
    """E[|S + sigma (n1 + i n2)|] for n1, n2 standard normal: sigma sqrt(pi / 2) L_{1/2}(-S^2 / (2 sigma^2)),
    written with exponentially scaled Bessel functions so it is finite for any S / sigma."""
    from scipy.special import i0e, i1e

    ratio = np.abs(np.asarray(signal, dtype=np.float64)) / np.asarray(sigma, dtype=np.float64)
    x = ratio**2 / 4
    return np.asarray(sigma) * math.sqrt(math.pi / 2) * ((1 + 2 * x) * i0e(x) + 2 * x * i1e(x))


def rician_correct(mean, sigma) -> np.ndarray:
    """The signal S >= 0 whose Rician mean (:func:`rician_mean`) equals ``mean``, for noise level ``sigma``
    (broadcast against mean, > 0): 0 below the noise floor sigma sqrt(pi / 2), by interpolation of the tabulated
    mean function up to S = 40 sigma, and sqrt(mean^2 - sigma^2) above (the mean's asymptote)."""
    mean = np.asarray(mean, dtype=np.float64)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), mean.shape)
    if not np.isfinite(sigma).all() or (sigma <= 0).any():
        raise ValueError("sigma: expected finite noise levels > 0")
    table = np.linspace(0.0, 40.0, 4001)
    means = rician_mean(table, 1.0)
    ratio = mean / sigma
    inside = np.interp(ratio, means, table, left=0.0, right=table[-1])
    outside = np.sqrt(np.maximum(ratio**2 - 1.0, 0.0))
    return np.where(ratio > means[-1], outside, inside) * sigma


def match_times(schedule, noise_std: Tensor) -> Tensor:
    """Stage 2: the time t with sigma(t) / alpha(t) = noise_std (model units), clipped to the schedule's range."""
    noise_std = torch.as_tensor(noise_std, dtype=torch.float64).clamp_min(1e-6)
    t = schedule.t_from_sigma_tilde(noise_std)
    return t.clamp(schedule.t_min * 2, schedule.t_max)


class _CropDataset(torch.utils.data.Dataset):
    """Random crops of the stage-1 slices with their noisy condition: items (x0 (1, c, c), {"cond": (1, c, c)}).

    The condition is x0 plus white noise of std ``cond_std`` (per slice): the stage-1 error the model must learn
    to discount. The crop position and the noise come from a generator seeded by (seed, index, draw count)."""

    def __init__(self, slices: Tensor, cond_std: Tensor, crop: int, length: int, seed: int):
        self.slices, self.cond_std, self.crop, self.length, self.seed = slices, cond_std, crop, length, seed
        self.draws = 0

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        self.draws += 1
        generator = torch.Generator().manual_seed(hash((self.seed, index, self.draws)) % 2**62)
        k = int(torch.randint(self.slices.shape[0], (1,), generator=generator))
        height, width = self.slices.shape[-2:]
        i = int(torch.randint(height - self.crop + 1, (1,), generator=generator))
        j = int(torch.randint(width - self.crop + 1, (1,), generator=generator))
        x0 = self.slices[k, :, i:i + self.crop, j:j + self.crop]
        if bool(torch.rand((), generator=generator) < 0.5):
            x0 = x0.flip(-1)
        cond = x0 + self.cond_std[k] * torch.randn(x0.shape, generator=generator)
        return x0, {"cond": cond}


def denoise_dwi(data, bvals, mask=None, *, config: DenoiseConfig | None = None, progress: bool = False,
                return_info: bool = False, **options):
    """Denoise a DWI without clean data (DDM2-style, three stages; see the module docstring).

    data: (X, Y, Z, N) real array, N >= 3 volumes (b0 volumes included: all are denoised and returned in place).
    bvals: (N,) b-values. mask: optional (X, Y, Z) brain mask (stage 1 is fitted inside it; every voxel is
    denoised). config / options: a :class:`DenoiseConfig`, or its fields as keywords.
    Returns an array of data's shape and dtype (integers rounded and clipped to the dtype's range); with
    ``return_info`` also a dict of timings and the stage-2 times.
    """
    array, bvals, mask = check_dwi(data, bvals, mask)
    if config is not None and not isinstance(config, DenoiseConfig):
        raise ValueError(f"config: expected a DenoiseConfig, got {type(config).__name__}")
    config = DenoiseConfig(**{**(asdict(config) if config else {}), **options})
    from polydiff.core import VPCosineSchedule
    from polydiff.core.losses import DiffusionLoss
    from polydiff.core.training import TrainConfig, Trainer

    from .models import SliceUNet

    info, started = {}, time.perf_counter()
    values = array.astype(np.float64)
    x_size, y_size, z_size, n = values.shape

    # stage 1: J-invariant regression across volumes
    stage1 = stage1_j_invariant(values, mask, patch_radius=config.patch_radius, ridge=config.ridge,
                                local_mean=config.local_mean)
    info["stage1_seconds"] = time.perf_counter() - started

    # model units: [0, 1] by the 99.5th percentile of the data (inside the mask), then 2 x - 1
    reference = values[mask] if mask is not None else values.reshape(-1, n)
    scale = float(np.quantile(reference, 0.995)) or 1.0
    to_model = lambda v: 2.0 * v / scale - 1.0  # noqa: E731
    slices_noisy = torch.as_tensor(to_model(values)).permute(3, 2, 0, 1).reshape(n * z_size, 1, x_size, y_size)
    slices_stage1 = torch.as_tensor(to_model(stage1)).permute(3, 2, 0, 1).reshape(n * z_size, 1, x_size, y_size)

    # stage 2: per-slice noise level of the stage-1 residual -> diffusion time; stage-1 error std for the condition
    residual = (slices_noisy - slices_stage1)
    weight = torch.ones_like(residual) if mask is None else torch.as_tensor(
        np.broadcast_to(mask.transpose(2, 0, 1)[None], (n, z_size, x_size, y_size)).reshape(residual.shape)
    ).to(residual.dtype)
    count = weight.flatten(1).sum(1).clamp_min(1)
    mean = (residual * weight).flatten(1).sum(1) / count
    residual_std = (((residual - mean[:, None, None, None]) ** 2 * weight).flatten(1).sum(1) / count).sqrt()
    fallback = residual.flatten(1).std(1)
    residual_std = torch.where(weight.flatten(1).sum(1) > 16, residual_std, fallback)
    noise_std = _noise_std(slices_noisy.reshape(n, z_size, x_size, y_size), bvals <= config.b0_threshold,
                           None if mask is None else mask.transpose(2, 0, 1)).reshape(-1)
    cond_std = (residual_std**2 - noise_std**2).clamp_min((0.1 * noise_std) ** 2).sqrt()
    schedule = VPCosineSchedule(t_max=config.max_time)
    times = match_times(schedule, residual_std)
    info["matched_time_median"] = float(times.median())

    info["residual_std"], info["noise_std"] = residual_std, noise_std
    info["slices_noisy"], info["slices_stage1"], info["schedule"] = slices_noisy, slices_stage1, schedule

    # stage 3: train the slice model on stage-1 outputs (x0) with the noisy-copy condition
    torch.manual_seed(config.seed)
    network = SliceUNet(cond_channels=1, channels=config.channels, residual=True)
    crop = min(config.crop, (min(x_size, y_size) // 4) * 4)
    if crop < 8:
        raise ValueError(f"data: slices of {x_size} x {y_size} are too small for the slice model (>= 8 x 8)")
    padded_stage1, _ = pad_to_multiple(slices_stage1, network.multiple)
    dataset = _CropDataset(padded_stage1.float(), cond_std.float(), crop,
                           length=config.train_steps * config.batch_size, seed=config.seed)
    train_config = TrainConfig(steps=config.train_steps, batch_size=config.batch_size, lr=config.lr,
                               lr_schedule="cosine", warmup_steps=min(50, config.train_steps // 10),
                               ema_decay=None, seed=config.seed, device=config.device, progress=progress,
                               log_every=max(1, config.train_steps // 10))
    loss = DiffusionLoss(schedule, prediction="x0", weighting="simple")
    trainer = Trainer(network, loss, dataset, train_config, resume=False).fit()
    info["train_seconds"] = time.perf_counter() - started - info["stage1_seconds"]

    # sampling from the matched times with any core solver, the stage-1 slice as condition
    model = trainer.ema_model.eval()
    out = sample_from_matched(model, schedule, slices_noisy, slices_stage1, times, solver=config.solver,
                              steps=config.sample_steps, seed=config.seed)
    outputs = [out]
    denoised = torch.cat(outputs).reshape(n, z_size, x_size, y_size).permute(2, 3, 1, 0).numpy()
    denoised = (denoised + 1.0) * scale / 2.0
    # stage 4: Rician bias correction with the noise level of each slice (data units)
    sigma = (noise_std.reshape(n, z_size).median(0).values.numpy() * scale / 2.0).clip(1e-12 * scale)
    info["sigma"] = sigma
    if config.rician:
        info["uncorrected"] = _cast_like(denoised, array)
        denoised = rician_correct(denoised, sigma[None, None, :, None])
    info["seconds"] = time.perf_counter() - started
    info["model"] = model
    result = _cast_like(denoised, array)
    return (result, info) if return_info else result


def sample_from_matched(model, schedule, noisy: Tensor, cond: Tensor, times: Tensor, *, solver: str = "ddim",
                        steps: int = 1, seed: int = 0, batch: int = 16) -> Tensor:
    """Stage 3 sampling: x_t = alpha(t_i) y_i for each slice i at its matched time t_i, run to t = 0 by the core
    solver ``solver`` over a per-slice log-SNR grid of ``steps`` steps, with ``cond`` as the model's condition.
    noisy, cond: (slices, 1, H, W) in model units; times: (slices,). Returns (slices, 1, H, W) float64."""
    from polydiff.core import Denoiser, list_solvers, make_grid

    device = next(model.parameters()).device
    denoiser = Denoiser(model, schedule, prediction="x0")
    function = list_solvers()[solver]
    generator = torch.Generator(device=device).manual_seed(seed)
    alpha = schedule.alpha(times)
    multiple = getattr(model, "multiple", 1)
    outputs = []
    for start in range(0, noisy.shape[0], batch):
        stop = min(start + batch, noisy.shape[0])
        chunk, size = pad_to_multiple(noisy[start:stop].float(), multiple)
        condition, _ = pad_to_multiple(cond[start:stop].float(), multiple)
        grid = torch.stack([make_grid(schedule, steps, "logsnr", t_start=float(t), final_zero=True)
                            for t in times[start:stop]], dim=1).to(device)
        x = (alpha[start:stop, None, None, None].float() * chunk).to(device)
        with torch.no_grad():
            out = function(denoiser, x, grid, cond={"cond": condition.to(device)}, generator=generator)
        outputs.append(out[..., :size[0], :size[1]].double().cpu())
    return torch.cat(outputs)


def _cast_like(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """values in like's dtype: integers rounded and clipped to the dtype's range (negative Rician-impossible
    values clipped at 0 for unsigned types by the same rule)."""
    if np.issubdtype(like.dtype, np.integer):
        info = np.iinfo(like.dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(like.dtype)
    return values.astype(like.dtype)
