"""``polydiff medical denoise | inpaint | reconstruct``: NIfTI / HDF5 in, NIfTI out (affine, header, dtype kept).

    polydiff medical denoise dwi.nii.gz --bval dwi.bval --bvec dwi.bvec --out dwi_denoised.nii.gz
    polydiff medical inpaint t1.nii.gz --mask lesion.nii.gz --out filled.nii.gz
    polydiff medical reconstruct scan.h5 --out recon.nii.gz
    polydiff medical train-prior --out prior_dir

inpaint and reconstruct use the priors that ship with the package unless ``--prior`` names a folder written by
``train-prior`` (a prior trained on your own slices).
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def _check_out(path: str, force: bool) -> Path:
    out = Path(path)
    if not (out.name.endswith(".nii") or out.name.endswith(".nii.gz")):
        raise ValueError(f"--out: expected a .nii or .nii.gz file name, got {path!r}")
    if out.exists() and not force:
        raise ValueError(f"--out: {path} exists; pass --force to overwrite it")
    return out


def _denoise(args: argparse.Namespace) -> int:
    import numpy as np

    from .data import read_nifti, read_text_vector, write_nifti
    from .denoise import denoise_dwi

    out = _check_out(args.out, args.force)
    data, image = read_nifti(args.input)
    bvals = read_text_vector(args.bval, "--bval")
    if args.bvec is not None:
        bvecs = read_text_vector(args.bvec, "--bvec")
        if bvecs.size != 3 * bvals.size:
            raise ValueError(f"--bvec: expected 3 x {bvals.size} values (one direction per volume), got {bvecs.size}")
    mask = None
    if args.mask is not None:
        mask, _ = read_nifti(args.mask)
        mask = np.asarray(mask) > 0
    denoised = denoise_dwi(data, bvals, mask, train_steps=args.train_steps, solver=args.solver,
                           sample_steps=args.sample_steps, seed=args.seed, device=args.device,
                           progress=not args.quiet)
    write_nifti(out, denoised, image, force=args.force)
    print(f"wrote {out} ({'x'.join(map(str, denoised.shape))}, {denoised.dtype})")
    return 0


def _load_prior(path: str | None, shipped: str):
    """The prior in the folder ``path`` (``--prior``), or the shipped prior ``shipped`` when it is None."""
    from .prior import load_prior

    if path is None:
        return load_prior(shipped)
    if not Path(path).is_dir():
        raise ValueError(f"--prior: {path!r} is not a folder written by `polydiff medical train-prior`")
    return load_prior(path)


def _inpaint(args: argparse.Namespace) -> int:
    import numpy as np

    from .data import read_nifti, write_nifti
    from .inpainting import inpaint

    out = _check_out(args.out, args.force)
    data, image = read_nifti(args.input)
    mask, _ = read_nifti(args.mask)
    if mask.shape != data.shape:
        raise ValueError(f"--mask: expected the image's shape {data.shape}, got {mask.shape}")
    prior = _load_prior(args.prior, "inpaint")
    volume = data[..., None] if data.ndim == 2 else data
    mask3 = (np.asarray(mask) > 0)
    mask3 = mask3[..., None] if mask3.ndim == 2 else mask3
    if volume.ndim != 3:
        raise ValueError(f"input: expected a 2-D or 3-D image, got shape {data.shape}")
    result = volume.copy()
    for z in range(volume.shape[2]):
        if mask3[:, :, z].any():
            result[:, :, z] = inpaint(volume[:, :, z], mask3[:, :, z], prior, method=args.method, steps=args.steps,
                                      seed=args.seed, num_samples=args.samples, t_start=args.t_start)
    write_nifti(out, result.reshape(data.shape), image, force=args.force)
    print(f"wrote {out}")
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    import numpy as np

    from .data import read_kspace_h5, write_nifti
    from .recon import PRIOR_METHODS, reconstruct

    out = _check_out(args.out, args.force)
    kspace = read_kspace_h5(args.input)
    sampled = np.abs(kspace).sum(axis=(0, 2)) > 0  # rows with data in any slice
    prior = (_load_prior(args.prior, "recon" if args.method == "conditional" else "inpaint")
             if args.method in PRIOR_METHODS else None)
    t_start = args.t_start if args.t_start is not None or args.method == "conditional" else 0.1
    slices = [reconstruct(k, sampled, prior, method=args.method, steps=args.steps, seed=args.seed,
                          num_samples=args.samples, t_start=t_start) for k in kspace]
    write_nifti(out, np.stack(slices, axis=-1).astype(np.float32), None, force=args.force)
    print(f"wrote {out} ({len(slices)} slices, {int(sampled.sum())} of {sampled.size} lines sampled)")
    return 0


def _train_prior(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .prior import RECON_CHANNELS, PriorConfig, SlicePrior, training_set

    out = Path(args.out)
    if out.exists() and not args.force:
        raise ValueError(f"--out: {args.out} exists; pass --force to overwrite it")
    options = {"task": "recon", "channels": RECON_CHANNELS} if args.task == "recon" else {}
    prior = SlicePrior(train_steps=args.steps, batch_size=args.batch_size, seed=args.seed, device=args.device,
                       checkpoint_dir=args.checkpoint_dir,
                       num_workers=args.workers, **options).fit(*training_set(), progress=not args.quiet)
    prior.config = PriorConfig(**{**asdict(prior.config), "device": None, "checkpoint_dir": None, "num_workers": 0})
    prior.save_pretrained(out)
    print(f"saved the {args.task} prior ({args.steps} steps) to {out}")
    return 0


def register(subparsers) -> None:
    """Add ``medical`` with its denoise / inpaint / reconstruct / train-prior subcommands."""
    from .denoise import DenoiseConfig

    medical = subparsers.add_parser("medical", help="dMRI denoising, inpainting and k-space reconstruction")
    sub = medical.add_subparsers(dest="medical_command", required=True)
    defaults = DenoiseConfig()

    def common(parser, out_help):
        parser.add_argument("--out", required=True, help=out_help)
        parser.add_argument("--force", action="store_true", help="overwrite an existing output")
        parser.add_argument("--seed", type=int, default=0, help="random seed of training and sampling")
        parser.add_argument("--quiet", action="store_true", help="no progress bars")

    denoise = sub.add_parser("denoise", help="self-supervised DWI denoising (DDM2-style) of one 4-D NIfTI scan")
    denoise.add_argument("input", help="4-D DWI NIfTI (.nii / .nii.gz), volumes last")
    denoise.add_argument("--bval", required=True, help="FSL .bval file: one b-value per volume")
    denoise.add_argument("--bvec", default=None, help="FSL .bvec file (checked for one direction per volume)")
    denoise.add_argument("--mask", default=None, help="optional brain-mask NIfTI (nonzero = brain) for stage 1")
    denoise.add_argument("--train-steps", type=int, default=defaults.train_steps,
                         help="training steps of the stage-3 diffusion model")
    denoise.add_argument("--solver", default=defaults.solver, help="core solver run from the matched time")
    denoise.add_argument("--sample-steps", type=int, default=defaults.sample_steps,
                         help="solver steps from the matched time to t = 0")
    denoise.add_argument("--device", default=None, help="cpu, cuda (default: CUDA when available)")
    common(denoise, "output NIfTI: same shape, dtype, affine and header as the input")
    denoise.set_defaults(func=_denoise)

    inpaint = sub.add_parser("inpaint", help="fill a masked region of a 2-D / 3-D NIfTI slice by slice")
    inpaint.add_argument("input", help="2-D or 3-D NIfTI image")
    inpaint.add_argument("--mask", required=True, help="NIfTI of the image's shape, nonzero = region to fill")
    inpaint.add_argument("--prior", default=None, help="folder written by `polydiff medical train-prior` (default: "
                                                       "the shipped slice prior)")
    inpaint.add_argument("--method", default=None, choices=("conditional", "repaint", "ddnm"),
                         help="conditional (default for a conditional prior) or a core inverse method")
    inpaint.add_argument("--steps", type=int, default=50, help="sampling grid steps")
    inpaint.add_argument("--samples", type=int, default=4, help="posterior samples averaged")
    inpaint.add_argument("--t-start", type=float, default=None,
                         help="conditional only: start at this time from the noised harmonic fill (default: noise)")
    common(inpaint, "output NIfTI (the input's affine, header and dtype)")
    inpaint.set_defaults(func=_inpaint)

    recon = sub.add_parser("reconstruct", help="reconstruct undersampled single-coil k-space (fastMRI HDF5)")
    recon.add_argument("input", help="HDF5 file with a complex 'kspace' dataset (slices, height, width), centred; "
                                     "unsampled rows are zero")
    recon.add_argument("--prior", default=None, help="folder written by `polydiff medical train-prior` (default: "
                                                     "the shipped prior the method needs)")
    recon.add_argument("--method", default="conditional",
                       choices=("conditional", "diffpir", "ddnm", "dps", "zero-filled", "cs-tv"),
                       help="reconstruction method (conditional, the default: a prior trained with --task recon)")
    recon.add_argument("--steps", type=int, default=50, help="sampling grid steps (the prior methods)")
    recon.add_argument("--samples", type=int, default=4, help="samples averaged (the prior methods)")
    recon.add_argument("--t-start", type=float, default=None,
                       help="warm start: begin at this time from the noised CS-TV estimate (default: 0.1 for "
                            "diffpir, ddnm and dps; none, from noise, for conditional)")
    common(recon, "output NIfTI of the real images (height, width, slices), identity affine")
    recon.set_defaults(func=_reconstruct)

    train = sub.add_parser("train-prior", help="train the slice prior on the bundled training slices")
    train.add_argument("--steps", type=int, default=1400, help="training steps")
    train.add_argument("--device", default=None, help="cpu, cuda (default: CUDA when available)")
    train.add_argument("--task", default="inpaint", choices=("inpaint", "recon"),
                       help="inpaint: the unconditional + mask-conditional prior; recon: conditioned on the "
                            "zero-filled image of randomly undersampled training slices")
    train.add_argument("--checkpoint-dir", default=None,
                       help="Trainer checkpoints; a rerun resumes there, a larger --steps continues a finished run")
    train.add_argument("--workers", type=int, default=0, help="data-loading processes")
    train.add_argument("--batch-size", type=int, default=8, help="training batch size")
    common(train, "output folder (safetensors + JSON)")
    train.set_defaults(func=_train_prior)
