"""``polydiff bench medical [--quick] --out DIR``: denoising, inpainting and k-space reconstruction against the
tools clinicians use, every peer in the same command on the same data.

Tasks:
    denoise-snr5 / -snr10 / -snr20   the 3-shell phantom on real b0 anatomy (a central 64 x 64 x 10 x 64 crop
                                     of the 128 x 128 x 10 x 64 volume; --quick: 32 x 32 x 5), Rician noise;
                                     polydiff DDM2-style (self-supervised on the noisy scan itself), its
                                     ablations (without the Rician correction; stage 1 and the correction, no
                                     diffusion model), MP-PCA, Patch2Self, NL-means, the noisy input, and MP-PCA
                                     followed by polydiff's Rician correction (a reference row, not a tool users
                                     have). PSNR over the brain voxels of all volumes, SSIM averaged over the
                                     brain pixels of every slice.
    denoise-default                  full run only: the default ``denoise_dwi`` (training included) on the whole
                                     128 x 128 x 10 x 64 phantom at SNR 10, for the issue's time limit.
    inpaint-2 / -5 / -8              seeded tumour-shaped masks of 2 / 5 / 8 % of the brain area on held-out
                                     slices (real b0 and phantom DWI); the prior's mask-conditional model (from
                                     noise, and from the noised harmonic fill; samples averaged), RePaint and
                                     DDNM on its unconditional model vs harmonic and biharmonic fill; the BraTS
                                     metric inside the mask.
    recon-4x / -8x                   Cartesian single-coil undersampling (8 % centre lines kept) of the same
                                     held-out slices; the reconstruction-conditioned prior (conditioned on the
                                     zero-filled image, DiffPIR with exact data consistency and fresh noise
                                     at every step, samples averaged),
                                     DiffPIR (from the noised CS estimate, and from noise), DDNM and DPS on the
                                     slice prior vs zero-filled and FISTA-TV compressed sensing; whole-slice
                                     PSNR / SSIM / MSE.
Both priors train only on slices 0-5 of the b0 volume, its phantom at those slices and dipy's other real brain
slices (T1, aniso_vox, test_piesno); every task image comes from slices 6-9 of the b0 volume and its phantom, so
nothing is evaluated on training data. Sampling settings (the ``t_start`` and ``zeta`` budgets) were chosen on
:func:`~polydiff.medical.prior.validation_slices`, never on the task images.

Options after the package name (``polydiff bench medical --out DIR -- --tasks denoise-snr10``):
    --tasks a,b    subset of tasks, run in the order given (default: all)
    --fresh        recompute cached results
    --prior DIR, --recon-prior DIR   use saved priors (the report lists their budgets)
    --train-priors  train both priors here (by default both modes use the priors that ship with the package,
                    trained by the full run's recipe; --quick --train-priors trains small ones in a minute or two)
Each task's rows are cached in ``DIR/medical-runs/`` as they finish (keyed by the mode and, for the prior tasks, by
where the priors came from), so a long full run can be split across processes and reassembled by running the
command again.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from polydiff.core import benchkit

from .prior import PriorConfig

__all__ = ["run", "budgets", "TASKS", "add_arguments"]

TASKS = ("denoise-snr5", "denoise-snr10", "denoise-snr20", "inpaint-2", "inpaint-5", "inpaint-8", "recon-4x",
         "recon-8x", "denoise-default")
BETTER = {"psnr": "max", "ssim": "max", "mse": "min", "seconds": "min"}
VERSIONS = ("polydiff-core", "polydiff-medical", "torch", "monai", "dipy", "nibabel", "scikit-image", "numpy")
# Reference numbers of issue 12 (measured by its author on a phantom of the same design; PSNR in the brain mask)
ISSUE_DENOISE = {5: {"noisy": 31.76, "MP-PCA": 34.64, "Patch2Self": 34.51, "NL-means": 37.70},
                 10: {"noisy": 38.18, "MP-PCA": 42.65, "Patch2Self": 42.13, "NL-means": 40.20},
                 20: {"noisy": 44.39, "MP-PCA": 50.92, "Patch2Self": 49.33, "NL-means": 41.47}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ", ".join(TASKS))
    parser.add_argument("--fresh", action="store_true", help="recompute cached task results")
    parser.add_argument("--prior", default=None,
                        help="folder of a slice prior (`polydiff medical train-prior`) to use instead of training one")
    parser.add_argument("--recon-prior", default=None,
                        help="folder of a reconstruction-conditioned prior (`polydiff medical train-prior --task "
                             "recon`) to use instead of training one")
    parser.add_argument("--train-priors", action="store_true",
                        help="train the priors in this run (default: the priors shipped with the package)")


def budgets(quick: bool) -> dict:
    """Every method's budget (the markdown lists them)."""
    if quick:
        return {"phantom": "32x32x5x64 crop", "denoise_train_steps": 10, "denoise_batch": 8,
                "denoise_sample_steps": 1, "prior_train_steps": 300, "prior_crop": 32, "sample_steps": 4,
                "repaint_jumps": "length 2 x 2", "inpaint_samples": 1, "inpaint_t_start": 0.5, "recon_samples": 1,
                "recon_t_start": 0.1, "recon_conditioned_t_start": 0.1, "recon_conditioned_zeta": 1.0,
                "recon_prior_train_steps": 400,
                "recon_prior_batch": 8, "test_images": 1, "cs_iterations": 60}
    return {"phantom": "64x64x10x64 crop", "denoise_train_steps": 200, "denoise_batch": 16, "denoise_sample_steps": 1,
            "prior_train_steps": PRIOR_STEPS, "prior_crop": 64, "sample_steps": 20, "repaint_jumps": "length 5 x 2",
            "inpaint_samples": 8, "inpaint_t_start": 0.5, "recon_samples": 8, "recon_t_start": 0.05,
            "recon_conditioned_t_start": 0.05, "recon_conditioned_zeta": 1.0, "recon_prior_train_steps": RECON_STEPS,
            "recon_prior_batch": 8,
            "test_images": 2, "cs_iterations": 60}


PRIOR_STEPS = 1400  # the slice prior (continuing it to 2,600 steps did not lower its denoising error: README)
RECON_STEPS = 15000  # the reconstruction-conditioned prior (64 x 64 crops of undersampled slices, batch 8): trained
RECON_FIRST_STEPS = 10000  # in one cosine schedule to here, then continued with it stretched (README)
CROPS = {"32x32x5x64 crop": (slice(48, 80), slice(48, 80), slice(2, 7)),
         "64x64x10x64 crop": (slice(32, 96), slice(32, 96), slice(0, 10)), "128x128x10x64": None}


# ------------------------------------------------------------------------------------------------ denoising


def _slice_ssim(clean: np.ndarray, estimate: np.ndarray, mask: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    peak = float(clean[np.broadcast_to(mask[..., None], clean.shape)].max())
    scores = []
    for z in range(clean.shape[2]):
        if mask[:, :, z].sum() < 10:
            continue
        for v in range(clean.shape[3]):
            _, ssim_map = structural_similarity(clean[:, :, z, v].astype(float), estimate[:, :, z, v].astype(float),
                                                data_range=peak, win_size=7, full=True)
            scores.append(float(ssim_map[mask[:, :, z]].mean()))
    return float(np.mean(scores))


def _denoise_task(snr: int, quick: bool, seed: int, budget: dict, figures_dir: Path) -> list[dict]:
    from .data import make_phantom
    from .denoise import DenoiseConfig, denoise_dwi, rician_correct, stage1_j_invariant
    from .evaluate import masked_psnr
    from .peers import DENOISE_PEERS, denoise_peer

    phantom = make_phantom(snr, seed=seed, crop=CROPS[budget["phantom"]])
    task = f"denoise-snr{snr}"
    rows, outputs = [], {}

    def score(method, estimate, seconds, peer):
        outputs[method] = estimate
        rows.append({"task": task, "method": method, "peer": peer,
                     "psnr": masked_psnr(phantom.clean, estimate, phantom.mask),
                     "ssim": _slice_ssim(phantom.clean, estimate, phantom.mask),
                     "mse": float(((phantom.clean - estimate)[np.broadcast_to(phantom.mask[..., None],
                                                                             estimate.shape)] ** 2).mean()),
                     "seconds": seconds})

    score("noisy input", phantom.noisy, 0.0, True)
    config = DenoiseConfig(train_steps=budget["denoise_train_steps"], batch_size=budget["denoise_batch"],
                           sample_steps=budget["denoise_sample_steps"], seed=seed, device="cpu")
    started = time.perf_counter()
    denoised, info = denoise_dwi(phantom.noisy, phantom.bvals, phantom.mask, config=config, return_info=True)
    seconds = time.perf_counter() - started
    score("polydiff DDM2", denoised, seconds, False)
    score("polydiff DDM2 without Rician correction", info["uncorrected"], seconds, False)
    sigma = info["sigma"][None, None, :, None]  # the scan's own noise level (repeated b0 volumes)
    started = time.perf_counter()
    stage1 = rician_correct(stage1_j_invariant(phantom.noisy, phantom.mask), sigma)
    score("polydiff stage 1 + Rician correction", stage1.astype(np.float32), time.perf_counter() - started, False)
    for name in DENOISE_PEERS:
        started = time.perf_counter()
        estimate = denoise_peer(name, phantom.noisy, phantom.bvals, phantom.mask if name != "Patch2Self" else None)
        score(name, estimate.astype(np.float32), time.perf_counter() - started, True)
        if name == "MP-PCA":
            mppca_seconds = time.perf_counter() - started
            reference = rician_correct(estimate, sigma).astype(np.float32)
    score("MP-PCA + polydiff Rician correction (reference)", reference, mppca_seconds, False)
    if snr == 10:
        _denoise_figure(phantom, outputs, figures_dir / "medical-denoise.png")
    return rows


def _denoise_default_task(seed: int) -> list[dict]:
    """The default ``denoise_dwi`` on the whole 128 x 128 x 10 x 64 phantom at SNR 10 (training included)."""
    from .data import make_phantom
    from .denoise import DenoiseConfig, denoise_dwi
    from .evaluate import masked_psnr

    phantom = make_phantom(10, seed=seed)
    started = time.perf_counter()
    denoised = denoise_dwi(phantom.noisy, phantom.bvals, phantom.mask, config=DenoiseConfig(seed=seed, device="cpu"))
    seconds = time.perf_counter() - started
    inside = np.broadcast_to(phantom.mask[..., None], denoised.shape)
    return [{"task": "denoise-default", "method": method, "peer": method == "noisy input",
             "psnr": masked_psnr(phantom.clean, estimate, phantom.mask),
             "ssim": _slice_ssim(phantom.clean, estimate, phantom.mask),
             "mse": float(((phantom.clean - estimate)[inside] ** 2).mean()), "seconds": elapsed}
            for method, estimate, elapsed in (("noisy input", phantom.noisy, 0.0),
                                              ("polydiff DDM2 (defaults)", denoised, seconds))]


def _figure(path: Path, panels: list[tuple[str, np.ndarray, tuple]], columns: int) -> None:
    from polydiff.core.optional import require

    require("matplotlib", extra="polydiff-medical[bench]", purpose="the figures of polydiff bench medical")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, image, limits) in zip(axes.flat, panels, strict=False):
        ax.imshow(np.rot90(image), cmap="gray", vmin=limits[0], vmax=limits[1])
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def _denoise_figure(phantom, outputs: dict, path: Path) -> None:
    z, v = phantom.clean.shape[2] // 2, 30 if phantom.clean.shape[3] > 30 else phantom.clean.shape[3] - 1
    clean = phantom.clean[:, :, z, v]
    limits = (0.0, float(np.quantile(clean, 0.995)))
    panels = [("clean (ground truth)", clean, limits)]
    residual_limit = (-float(phantom.sigma) * 3, float(phantom.sigma) * 3)
    for name in ("noisy input", "polydiff DDM2", "MP-PCA", "Patch2Self", "NL-means"):
        panels.append((name, outputs[name][:, :, z, v], limits))
    for name in ("polydiff DDM2", "MP-PCA", "Patch2Self", "NL-means"):
        panels.append((f"residual {name}", outputs["noisy input"][:, :, z, v] - outputs[name][:, :, z, v],
                       residual_limit))
    _figure(path, panels, 5)


# ------------------------------------------------------------------------------------------------ prior tasks


def _stages(total: int, first: int, quick: bool) -> list[int]:
    """The step counts a prior is trained to in turn: ``first`` in one cosine schedule, then continued from its
    checkpoint to ``total`` with the schedule stretched (the shipped priors' recipe); quick runs train ``total``."""
    return [total] if quick or total <= first else [first, total]


def _prior(out: Path, quick: bool, seed: int, budget: dict, given: str | None = None, train: bool = False):
    """The slice prior: ``given`` (a saved prior's folder), else the shipped one (without ``train``), else
    the cached one, else trained here (full run: 1,400 steps, then, if ``prior_train_steps`` is larger, continued
    from that checkpoint with the cosine schedule stretched to the new length)."""
    from .prior import SlicePrior, load_prior, training_set

    if given is not None:
        return SlicePrior.from_pretrained(given)
    if not train:
        return load_prior("inpaint")
    directory = out / "medical-runs" / f"prior-{'quick' if quick else 'full'}"
    if (directory / "config.json").is_file():
        return SlicePrior.from_pretrained(directory)
    checkpoints = str(out / "medical-runs" / f"prior-{'quick' if quick else 'full'}-checkpoints")
    data = training_set()
    total = budget["prior_train_steps"]
    for steps in _stages(total, PRIOR_STEPS, quick):
        prior = SlicePrior(train_steps=steps, crop=budget["prior_crop"], seed=seed, device="cpu",
                           checkpoint_dir=checkpoints, checkpoint_every=200).fit(*data)
    prior.config = PriorConfig(**{**asdict(prior.config), "device": None, "checkpoint_dir": None})
    prior.save_pretrained(directory)
    return prior


def _recon_prior(out: Path, quick: bool, seed: int, budget: dict, given: str | None = None, train: bool = False):
    """The reconstruction-conditioned prior: ``given``, else the shipped one (without ``train``), else the
    cached one, else trained here on the CPU."""
    from .prior import RECON_CHANNELS, SlicePrior, load_prior, training_set

    if given is not None:
        return SlicePrior.from_pretrained(given)
    if not train:
        return load_prior("recon")
    directory = out / "medical-runs" / f"recon-prior-{'quick' if quick else 'full'}"
    if (directory / "config.json").is_file():
        return SlicePrior.from_pretrained(directory)
    data = training_set()
    for steps in _stages(budget["recon_prior_train_steps"], RECON_FIRST_STEPS, quick):
        prior = SlicePrior(task="recon", train_steps=steps, batch_size=budget["recon_prior_batch"],
                           channels=(8, 8, 8) if quick else RECON_CHANNELS, seed=seed, device="cpu",
                           checkpoint_dir=None if quick else str(directory) + "-checkpoints").fit(*data)
    prior.config = PriorConfig(**{**asdict(prior.config), "device": None, "checkpoint_dir": None})
    prior.save_pretrained(directory)
    return prior


_SOURCES = {"given": "given with --prior", "shipped": "shipped with polydiff-medical (`load_prior`)",
            "trained": "trained by this command"}


def _source(given: str | None, train: bool) -> str:
    """Where a prior comes from: "given" (a folder option), "shipped" or "trained"."""
    return "given" if given is not None else "trained" if train else "shipped"


def _cache_note(cached: list[str], tasks: list[str]) -> str:
    """The report's line on which tasks' rows came from the cache."""
    where = "the cache of earlier runs with the same mode, seed and priors (DIR/medical-runs/)"
    if len(cached) == len(tasks):
        return f"Every task's rows were taken from {where}; this invocation assembled the report."
    return f"Taken from {where}: {', '.join(cached)}; the other tasks were computed by this run."


def _prior_tag(task: str, options) -> str:
    """The cache-name suffix of a task's rows: where its priors came from (none for the denoising tasks)."""
    if task.startswith("denoise"):
        return ""
    sources = [_source(options.prior, options.train_priors)]
    if task.startswith("recon"):
        sources.append(_source(options.recon_prior, options.train_priors))
    return "-" + "-".join(dict.fromkeys(sources))


def _test_images(quick: bool):
    from .prior import test_slices

    images, brains, names = test_slices()
    b0 = [i for i, name in enumerate(names) if name.startswith("b0")]
    dwi = [i for i, name in enumerate(names) if name.startswith("dwi")]
    keep = [b0[0]] if quick else b0[:1] + dwi[:1]
    return images[keep], brains[keep], [names[i] for i in keep]


def _inpaint_task(percent: int, quick: bool, seed: int, budget: dict, prior, figures_dir: Path) -> list[dict]:
    from .evaluate import brats_metrics
    from .inpainting import inpaint, tumour_mask
    from .peers import INPAINT_PEERS, inpaint_peer

    images, brains, _ = _test_images(quick)
    task, scores, examples = f"inpaint-{percent}", {}, {}
    steps = budget["sample_steps"]
    jump_length, jump_n = (2, 2) if quick else (5, 2)
    samples, t_start = budget["inpaint_samples"], budget["inpaint_t_start"]
    methods = {"polydiff conditional": lambda im, m: inpaint(im, m, prior, method="conditional", steps=steps,
                                                             num_samples=samples, seed=seed),
               "polydiff conditional from harmonic fill": lambda im, m: inpaint(
                   im, m, prior, method="conditional", steps=steps, num_samples=samples, seed=seed, t_start=t_start),
               "polydiff RePaint": lambda im, m: inpaint(im, m, prior, method="repaint", steps=steps,
                                                         jump_length=jump_length, jump_n_sample=jump_n, seed=seed),
               "polydiff DDNM": lambda im, m: inpaint(im, m, prior, method="ddnm", steps=steps, seed=seed)}
    methods.update({name: (lambda im, m, name=name: inpaint_peer(name, im, m)) for name in INPAINT_PEERS})
    for index, (image, brain) in enumerate(zip(images, brains, strict=True)):
        mask = tumour_mask(brain, percent / 100, seed=seed * 1000 + index * 10 + percent)
        for name, method in methods.items():
            started = time.perf_counter()
            filled = method(image, mask)
            elapsed = time.perf_counter() - started
            metrics = brats_metrics(filled, image, mask, brain)
            scores.setdefault(name, []).append({**metrics, "seconds": elapsed})
            if index == 0:
                examples[name] = filled
        if index == 0:
            examples["_image"], examples["_mask"] = image, mask
    rows = [{"task": task, "method": name, "peer": name in INPAINT_PEERS,
             **{k: float(np.mean([s[k] for s in values])) for k in ("psnr", "ssim", "mse", "seconds")}}
            for name, values in scores.items()]
    if percent == 8:
        image, mask = examples["_image"], examples["_mask"]
        limits = (0.0, float(np.quantile(image, 0.995)))
        panels = [("ground truth", image, limits), ("masked", np.where(mask, 0, image), limits)]
        panels += [(name, examples[name], limits) for name in methods]
        _figure(figures_dir / "medical-inpaint.png", panels, 3)
    return rows


def _recon_task(acceleration: int, quick: bool, seed: int, budget: dict, prior, recon_prior,
                figures_dir: Path) -> list[dict]:
    from .evaluate import image_metrics
    from .recon import reconstruct, undersample

    images, _, _ = _test_images(quick)
    task, scores, examples = f"recon-{acceleration}x", {}, {}
    steps = budget["sample_steps"]
    samples, t_start = budget["recon_samples"], budget["recon_t_start"]
    methods = {"zero-filled": ("zero-filled", True, {}), "CS (FISTA-TV)": ("cs-tv", True, {}),
               "polydiff recon-conditioned": ("conditional", False, {
                   "num_samples": samples, "diffpir_zeta": budget["recon_conditioned_zeta"]}),
               "polydiff recon-conditioned from CS": ("conditional", False, {
                   "num_samples": samples, "t_start": budget["recon_conditioned_t_start"],
                   "diffpir_zeta": budget["recon_conditioned_zeta"]}),
               "polydiff DiffPIR from CS": ("diffpir", False, {"t_start": t_start, "num_samples": samples}),
               "polydiff DiffPIR": ("diffpir", False, {"num_samples": samples}),
               "polydiff DDNM": ("ddnm", False, {"num_samples": samples}), "polydiff DPS": ("dps", False, {})}
    for index, image in enumerate(images):
        kspace, lines = undersample(image, acceleration, seed=seed + index)
        for name, (method, _, options) in methods.items():
            started = time.perf_counter()
            estimate = reconstruct(kspace, lines, recon_prior if method == "conditional" else prior, method=method,
                                   steps=steps, seed=seed, **options)
            elapsed = time.perf_counter() - started
            scores.setdefault(name, []).append({**image_metrics(estimate, image), "seconds": elapsed})
            if index == 0:
                examples[name] = estimate
    rows = [{"task": task, "method": name, "peer": methods[name][1],
             **{k: float(np.mean([s[k] for s in values])) for k in ("psnr", "ssim", "mse", "seconds")}}
            for name, values in scores.items()]
    if acceleration == 4:
        limits = (0.0, float(np.quantile(images[0], 0.995)))
        panels = [("ground truth", images[0], limits)] + [(name, examples[name], limits) for name in methods]
        _figure(figures_dir / "medical-recon.png", panels, 5)
    return rows


# ------------------------------------------------------------------------------------------------ report


def _best(rows, task, peers_only=True, metric="psnr"):
    candidates = [r for r in rows if r["task"] == task and (r["peer"] if peers_only else not r["peer"])
                  and r["method"] != "noisy input"]
    return max(candidates, key=lambda r: r[metric]) if candidates else None


SOURCE = "issue 12"


def _goals(rows: list[dict], quick: bool, timing: dict) -> list[dict]:
    """The issue's targets as :func:`polydiff.core.benchkit.goal` dicts, each verdict computed from this run's rows
    (None: not measured in this run)."""
    goals = []
    ours = {r["task"]: r for r in rows if r["method"] == "polydiff DDM2"}
    for snr in (5, 10, 20):
        task = f"denoise-snr{snr}"
        text = f"{task}: beat the best peer, self-supervised"
        if task not in ours:
            goals.append(benchkit.goal(text, None, "not run in this report", SOURCE))
            continue
        peer = _best(rows, task)
        reference = ", ".join(f"{k} {v}" for k, v in ISSUE_DENOISE[snr].items())
        ablations = "; ".join(f"{r['method']} {r['psnr']:.2f}" for r in rows if r["task"] == task and not r["peer"]
                              and r["method"] != "polydiff DDM2")
        goals.append(benchkit.goal(
            text, bool(ours[task]["psnr"] > peer["psnr"]),
            f"polydiff DDM2 {ours[task]['psnr']:.2f} dB vs best peer {peer['method']} {peer['psnr']:.2f} dB (same run; "
            f"{ablations})", f"{SOURCE}; its reference numbers on its own phantom: {reference}"))
    for percent in (2, 5, 8):
        task = f"inpaint-{percent}"
        text = f"{task}: SSIM >= 0.80 and PSNR >= 22 in the mask"
        candidates = [r for r in rows if r["task"] == task and not r["peer"]]
        if not candidates:
            goals.append(benchkit.goal(text, None, "not run in this report", SOURCE))
            continue
        best = max(candidates, key=lambda r: (r["ssim"] >= 0.80 and r["psnr"] >= 22, r["ssim"]))
        harmonic = next(r for r in rows if r["task"] == task and r["method"] == "harmonic")
        goals.append(benchkit.goal(
            text, bool(best["ssim"] >= 0.80 and best["psnr"] >= 22),
            f"best polydiff row {best['method']} SSIM {best['ssim']:.3f}, PSNR {best['psnr']:.2f} (harmonic fill "
            f"here {harmonic['ssim']:.3f} / {harmonic['psnr']:.2f})",
            f"{SOURCE}; its harmonic reference .651 / 18.44; BraTS top 3-D entries for orientation: 2023 .827 / 20.5, "
            "2024 .841 / 23.3"))
    for acceleration in (4, 8):
        task = f"recon-{acceleration}x"
        candidates = [r for r in rows if r["task"] == task and not r["peer"]]
        text = ("recon-4x: beat zero-filled by >= 5 dB PSNR and beat the CS baseline" if acceleration == 4
                else "recon-8x: reported (no target)")
        if not candidates:
            goals.append(benchkit.goal(text, None, "not run in this report", SOURCE))
            continue
        best = max(candidates, key=lambda r: r["psnr"])
        zero = next(r for r in rows if r["task"] == task and r["method"] == "zero-filled")
        cs = next(r for r in rows if r["task"] == task and r["method"] == "CS (FISTA-TV)")
        gain = best["psnr"] - zero["psnr"]
        met = bool(gain >= 5 and best["psnr"] > cs["psnr"]) if acceleration == 4 else None
        goals.append(benchkit.goal(text, met, f"best polydiff row {best['method']} {best['psnr']:.2f} dB, zero-filled "
                                   f"{zero['psnr']:.2f} ({gain:+.2f} dB), CS {cs['psnr']:.2f} dB", SOURCE))
    text = "default denoise of a 128x128x10x64 scan <= 10 min on 2 CPU cores"
    default = [r for r in rows if r["task"] == "denoise-default" and not r["peer"]]
    if default:
        minutes = default[0]["seconds"] / 60
        goals.append(benchkit.goal(text, bool(minutes <= 10),
                                   f"{minutes:.1f} min with the default settings, training included (one thread on a "
                                   f"shared 2-core machine; PSNR {default[0]['psnr']:.2f} dB at SNR 10)", SOURCE))
    elif not quick:
        goals.append(benchkit.goal(text, None, "not run in this report", SOURCE))
    if quick and "quick_seconds" in timing:
        goals.append(benchkit.goal("--quick <= 3 minutes", bool(timing["quick_seconds"] <= 180),
                                   f"{timing['quick_seconds']:.0f} s", SOURCE))
    return goals


def run(out_dir, *, quick: bool = False, seed: int = 0, argv=()) -> dict:
    """Run the benchmark (see the module docstring) and write DIR/medical.{json,md} and the figures."""
    import torch

    parser = argparse.ArgumentParser(prog="polydiff bench medical")
    add_arguments(parser)
    argv = list(argv)
    options = parser.parse_args(argv[1:] if argv[:1] == ["--"] else argv)
    tasks = [t for t in options.tasks.split(",") if t]
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"--tasks: unknown task {task!r}; choices: {', '.join(TASKS)}")
    torch.set_num_threads(1)
    started = time.perf_counter()
    out = Path(out_dir)
    cache = out / "medical-runs"
    cache.mkdir(parents=True, exist_ok=True)
    budget = budgets(quick)
    mode = "quick" if quick else "full"
    rows, prior, recon_prior, cached = [], None, None, []
    for task in tasks:
        path = cache / f"{task}-{mode}-seed{seed}{_prior_tag(task, options)}.json"
        if path.is_file() and not options.fresh:
            rows += json.loads(path.read_text())
            cached.append(task)
            continue
        if task == "denoise-default":
            if quick:
                continue
            task_rows = _denoise_default_task(seed)
        elif task.startswith("denoise"):
            task_rows = _denoise_task(int(task.split("snr")[1]), quick, seed, budget, out)
        else:
            prior = prior or _prior(out, quick, seed, budget, options.prior, options.train_priors)
            if task.startswith("inpaint"):
                task_rows = _inpaint_task(int(task.split("-")[1]), quick, seed, budget, prior, out)
            else:
                recon_prior = recon_prior or _recon_prior(out, quick, seed, budget, options.recon_prior,
                                                          options.train_priors)
                task_rows = _recon_task(int(task.split("-")[1][:-1]), quick, seed, budget, prior, recon_prior, out)
        path.write_text(json.dumps(task_rows, indent=1))
        rows += task_rows
    if not options.train_priors:  # rows from the cache: the budget still names the priors they used
        if prior is None and any(not t.startswith("denoise") for t in tasks):
            prior = _prior(out, quick, seed, budget, options.prior)
        if recon_prior is None and any(t.startswith("recon") for t in tasks):
            recon_prior = _recon_prior(out, quick, seed, budget, options.recon_prior)
    for name, model, given in (("prior", prior, options.prior), ("recon_prior", recon_prior, options.recon_prior)):
        if model is not None:  # the budget of the model actually used (a given one carries its own config)
            budget[f"{name}_train_steps"] = model.config.train_steps
            budget[f"{name}_batch"] = model.config.batch_size
            budget[f"{name}_channels"] = "x".join(str(c) for c in model.config.channels)
            if name == "prior":
                budget["prior_crop"] = model.config.crop
            budget[f"{name}_source"] = _SOURCES[_source(given, options.train_priors)].replace(
                "--prior", "--" + name.replace("_", "-"))
    timing = {"quick_seconds": time.perf_counter() - started} if quick else {}
    figures = [name for name in ("medical-denoise.png", "medical-inpaint.png", "medical-recon.png")
               if (out / name).is_file()]
    preamble = "\n\n".join([
        "## Budgets\n\n" + "\n".join(f"- {k}: {v}" for k, v in budget.items()),
        "Denoising: no clean data in training (polydiff DDM2 is fitted on the noisy scan it denoises); PSNR over "
        "brain voxels of all 64 volumes (peak = the ground truth's maximum there), against the noise-free signal, "
        "so the Rician bias of magnitude data counts as error: most of polydiff's margin comes from its Rician "
        "correction (stage 4), which the 'without Rician correction' and 'MP-PCA + polydiff Rician correction' "
        "rows isolate. Inpainting: the BraTS metric "
        "(0.5-99.5 percentile normalisation, inside the mask). Reconstruction: whole-slice metrics; the "
        "reconstruction-conditioned prior learns from random Cartesian undersampling (4x and 8x) of the training "
        "slices, never from the task images. Seconds: "
        "wall time with one thread on a shared 2-core machine. 'peer' rows are the tools users would otherwise "
        "choose; 'noisy input' is the reference.",
    ] + ([_cache_note(cached, tasks)] if cached else []))
    return benchkit.write_report(out, "medical", quick=quick, seed=seed, versions=benchkit.versions(VERSIONS),
                                 better=BETTER, rows=rows, title="polydiff-medical benchmark", preamble=preamble,
                                 figures=figures, extra={"budgets": budget, "timing": timing},
                                 goals=_goals(rows, quick, timing))
