"""`polydiff medical ...` end to end on tiny files: NIfTI affine / header / dtype kept, --force, one-line errors."""

import nibabel as nib
import numpy as np
import pytest

from polydiff.core.cli import main
from polydiff.medical.data import write_kspace_h5
from polydiff.medical.recon import undersample


@pytest.fixture()
def dwi_files(tmp_path, tiny_dwi):
    noisy, bvals = tiny_dwi
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    affine[:3, 3] = [-16, -16, 3]
    image = nib.Nifti1Image(np.rint(noisy).astype(np.int16), affine)
    image.header["descrip"] = b"tiny dwi"
    nib.save(image, tmp_path / "dwi.nii.gz")
    np.savetxt(tmp_path / "dwi.bval", bvals[None], fmt="%d")
    bvecs = np.random.default_rng(0).standard_normal((3, bvals.size))
    np.savetxt(tmp_path / "dwi.bvec", bvecs / np.linalg.norm(bvecs, axis=0))
    return tmp_path


def test_denoise_cli_keeps_affine_header_and_dtype(dwi_files, capsys):
    argv = ["medical", "denoise", str(dwi_files / "dwi.nii.gz"), "--bval", str(dwi_files / "dwi.bval"), "--bvec",
            str(dwi_files / "dwi.bvec"), "--out", str(dwi_files / "out.nii.gz"), "--train-steps", "2", "--quiet",
            "--device", "cpu"]
    assert main(argv) == 0
    source, out = nib.load(dwi_files / "dwi.nii.gz"), nib.load(dwi_files / "out.nii.gz")
    assert out.get_data_dtype() == np.int16 and out.shape == source.shape
    np.testing.assert_array_equal(out.affine, source.affine)
    assert out.header["descrip"] == source.header["descrip"]
    capsys.readouterr()
    assert main(argv) == 2  # exists: refused without --force
    err = capsys.readouterr().err
    assert err.startswith("polydiff: error: --out") and "--force" in err
    assert main([*argv, "--force"]) == 0


def test_denoise_cli_bad_bval_count_is_one_line(dwi_files, capsys):
    np.savetxt(dwi_files / "short.bval", np.zeros((1, 3)), fmt="%d")
    assert main(["medical", "denoise", str(dwi_files / "dwi.nii.gz"), "--bval", str(dwi_files / "short.bval"),
                 "--out", str(dwi_files / "o.nii.gz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("polydiff: error: ") and "bvals" in err[0]


def test_reconstruct_cli_reads_fastmri_hdf5(tmp_path):
    image = np.random.default_rng(0).uniform(size=(16, 16))
    kspace, _ = undersample(image, 4, seed=0)
    write_kspace_h5(tmp_path / "scan.h5", np.stack([kspace, kspace]))
    assert main(["medical", "reconstruct", str(tmp_path / "scan.h5"), "--method", "zero-filled", "--out",
                 str(tmp_path / "r.nii.gz")]) == 0
    out = np.asarray(nib.load(tmp_path / "r.nii.gz").dataobj)
    expected = np.fft.ifft2(np.fft.ifftshift(kspace), norm="ortho").real
    assert out.shape == (16, 16, 2)
    np.testing.assert_allclose(out[..., 1], expected, atol=1e-6)


def test_inpaint_cli_needs_a_prior_folder(tmp_path, capsys):
    nib.save(nib.Nifti1Image(np.ones((16, 16), np.float32), np.eye(4)), tmp_path / "im.nii.gz")
    nib.save(nib.Nifti1Image(np.eye(16, dtype=np.uint8), np.eye(4)), tmp_path / "mask.nii.gz")
    assert main(["medical", "inpaint", str(tmp_path / "im.nii.gz"), "--mask", str(tmp_path / "mask.nii.gz"),
                 "--prior", str(tmp_path / "none"), "--out", str(tmp_path / "o.nii.gz")]) == 2
    assert "--prior" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_quick_writes_the_report(tmp_path):
    assert main(["bench", "medical", "--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "medical.md").read_text()
    assert "## Goals" in text and "denoise-snr5" in text and "recon-4x" in text
    assert "shipped with polydiff-medical" in text


@pytest.mark.slow
def test_bench_quick_can_train_its_priors(tmp_path):
    assert main(["bench", "medical", "--quick", "--out", str(tmp_path), "--", "--tasks", "recon-4x",
                 "--train-priors"]) == 0
    assert "- prior_source: trained by this command" in (tmp_path / "medical.md").read_text()
    assert (tmp_path / "medical-runs" / "recon-4x-quick-seed0-trained.json").is_file()


def test_bench_reads_its_options_after_a_double_dash(tmp_path):
    from polydiff.medical.bench import run

    with pytest.raises(ValueError, match="^--tasks: unknown task 'nope'"):
        run(tmp_path, quick=True, argv=["--", "--tasks", "nope"])
    with pytest.raises(ValueError, match="^--tasks"):
        run(tmp_path, quick=True, argv=["--tasks", "nope"])


def test_train_recon_prior_and_reconstruct_with_it(tmp_path):
    assert main(["medical", "train-prior", "--task", "recon", "--steps", "2", "--batch-size", "2", "--device", "cpu",
                 "--quiet", "--out", str(tmp_path / "recon")]) == 0
    image = np.random.default_rng(0).uniform(size=(128, 128))
    kspace, lines = undersample(image, 4, seed=0)
    write_kspace_h5(tmp_path / "scan.h5", kspace[None])
    assert main(["medical", "reconstruct", str(tmp_path / "scan.h5"), "--method", "conditional", "--prior",
                 str(tmp_path / "recon"), "--steps", "2", "--samples", "1", "--out", str(tmp_path / "r.nii.gz")]) == 0
    out = np.asarray(nib.load(tmp_path / "r.nii.gz").dataobj)[..., 0].astype(np.float64)
    measured = np.fft.fftshift(np.fft.fft2(out, norm="ortho"))[lines]
    np.testing.assert_allclose(measured, kspace[lines], atol=1e-3 * np.abs(kspace).max())


def test_bench_priors_are_the_shipped_ones_unless_given_or_trained_and_the_cache_says_which():
    from argparse import Namespace

    from polydiff.medical.bench import _prior_tag

    def options(prior=None, recon_prior=None, train_priors=False):
        return Namespace(prior=prior, recon_prior=recon_prior, train_priors=train_priors)

    assert _prior_tag("denoise-snr5", options()) == ""
    assert _prior_tag("inpaint-2", options()) == "-shipped"
    assert _prior_tag("recon-4x", options()) == "-shipped"
    assert _prior_tag("recon-4x", options(recon_prior="dir")) == "-shipped-given"
    assert _prior_tag("inpaint-2", options(train_priors=True)) == "-trained"
    assert _prior_tag("recon-8x", options(prior="a", recon_prior="b")) == "-given"
