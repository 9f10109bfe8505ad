"""polydiff.core's bad-input suite: every wrong input is refused before any work is done (or, for a model that
returns NaN, as soon as it shows), with the exception type asserted and a message that names the argument.

Each case is (callable, exception, pattern); the pattern starts with the argument's name. Cases that need files
build them under tmp_path. A domain package keeps the same suite in tests/<package>/test_bad_inputs.py.
"""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from polydiff.core import (
    Denoiser,
    DiscreteSchedule,
    EDMSchedule,
    FlowSchedule,
    VESchedule,
    VPCosineSchedule,
    VPLinearSchedule,
    make_grid,
    sample,
)
from polydiff.core.bridges.ddbm import BridgeSchedule
from polydiff.core.fitted_grid import fit_grid
from polydiff.core.pretrained import PretrainedMixin, load_pretrained, read_config, save_pretrained
from polydiff.core.schedules import linear_betas, schedule_from_config
from polydiff.core.solvers.adaptive import sample_adaptive_sde, sample_dpm_solver_adaptive
from polydiff.core.solvers.ddim import sample_ddim
from polydiff.core.training import TrainConfig, Trainer

NAN, INF = float("nan"), float("inf")
SCHEDULE = DiscreteSchedule.linear()


def _denoiser(model=None, schedule=SCHEDULE, **options):
    return Denoiser(model or (lambda x, t: 0.1 * x), schedule, **options)


def _noise(batch=4, dim=2):
    return torch.randn(batch, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _nan_model(x, t):
    return x * NAN


def _nan_late_model(x, t_model):
    """Finite on the first steps, NaN once the training index drops below 300 (no host sync)."""
    return torch.where((t_model < 300).reshape(-1, 1), torch.full_like(x, NAN), 0.1 * x)


class Small(PretrainedMixin, nn.Module):
    def __init__(self, width: int, schedule=None):
        super().__init__()
        self.config = {"width": width, "schedule": schedule}
        self.lin = nn.Linear(width, width)


class OtherNet(PretrainedMixin, nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.config = {"width": width}
        self.lin = nn.Linear(width, width)


# ------------------------------------------------------------------------------- arguments (no files)

CASES = {
    # continuous and discrete schedules validate their constructor arguments
    "vp-cosine-negative-s": (lambda: VPCosineSchedule(s=-1), ValueError, r"^s: "),
    "vp-cosine-t-max-2": (lambda: VPCosineSchedule(t_max=2.0), ValueError, r"^t_max: .*< 1"),
    "vp-cosine-t-min-above-t-max": (lambda: VPCosineSchedule(t_min=0.5, t_max=0.4), ValueError, r"^t_min, t_max"),
    "flow-negative-t-min": (lambda: FlowSchedule(t_min=-0.5), ValueError, r"^t_min: "),
    "flow-t-max-1": (lambda: FlowSchedule(t_max=1.0), ValueError, r"^t_max: "),
    "vp-linear-zero-beta-min": (lambda: VPLinearSchedule(beta_min=0.0), ValueError, r"^beta_min: "),
    "vp-linear-nan-t-max": (lambda: VPLinearSchedule(t_max=NAN), ValueError, r"^t_max: "),
    "vp-linear-string-beta": (lambda: VPLinearSchedule(beta_min="0.1"), ValueError, r"^beta_min: "),
    "ve-inf-sigma-max": (lambda: VESchedule(sigma_max=INF), ValueError, r"^sigma_max: "),
    "ve-sigma-order": (lambda: VESchedule(sigma_min=2.0, sigma_max=1.0), ValueError, r"^sigma_min, sigma_max"),
    "edm-zero-sigma-data": (lambda: EDMSchedule(sigma_data=0.0), ValueError, r"^sigma_data: "),
    "edm-negative-sigma-min": (lambda: EDMSchedule(sigma_min=-1.0), ValueError, r"^sigma_min: "),
    "discrete-zero-terminal-not-bool": (lambda: DiscreteSchedule(linear_betas(10), zero_terminal_snr="yes"),
                                        ValueError, r"^zero_terminal_snr: "),
    "discrete-nan-terminal-log-snr": (lambda: DiscreteSchedule(linear_betas(10), terminal_log_snr=NAN),
                                      ValueError, r"^terminal_log_snr: "),
    "discrete-increasing-alphas-cumprod": (lambda: DiscreteSchedule(alphas_cumprod=[0.5, 0.9]), ValueError,
                                           r"^alphas_cumprod: "),
    "schedule-config-unknown-key": (lambda: schedule_from_config({"type": "vp_linear", "beta_mn": 0.1}),
                                    ValueError, r"beta_mn"),
    "schedule-config-unknown-type": (lambda: schedule_from_config({"type": "cubic"}), ValueError,
                                     r"^config\['type'\]"),
    "schedule-config-not-a-dict": (lambda: schedule_from_config("vp_linear"), ValueError, r"^config: "),
    # grids: times beyond the schedule's t_max (diffusers' integer timesteps), t_start beyond it
    "grid-integer-timesteps": (lambda: sample(_denoiser(), _noise(), "ddim", 10, np.arange(999, -1, -100)),
                               ValueError, r"^grid: .*t_max = 1\.0.*999"),
    "grid-above-t-max-direct-solver": (lambda: sample_ddim(_denoiser(), _noise(), torch.tensor([5.0, 1.0, 0.5])),
                                       ValueError, r"^grid: .*t_max"),
    "grid-above-t-max-vp-cosine": (lambda: sample(_denoiser(schedule=VPCosineSchedule()), _noise(), "ddim", 2,
                                                  [1.0, 0.5, 0.01]), ValueError, r"^grid: .*t_max = 0\.9946"),
    "t-start-beyond-t-max": (lambda: sample(_denoiser(), _noise(), steps=5, t_start=1.5), ValueError,
                             r"^t_start: .*t_max = 1\.0"),
    "t-start-nan": (lambda: sample(_denoiser(), _noise(), steps=5, t_start=NAN), ValueError, r"^t_start: "),
    "make-grid-t-start-vp-cosine": (lambda: make_grid(VPCosineSchedule(), 5, t_start=0.999), ValueError,
                                    r"^t_start: "),
    "explicit-grid-with-t-start": (lambda: sample(_denoiser(), _noise(), "ddim", 2, [0.9, 0.5, 0.1], t_start=0.8),
                                   ValueError, r"^t_start: the explicit grid starts at 0\.9"),
    "explicit-grid-with-final-zero": (lambda: sample(_denoiser(), _noise(), "ddim", 2, [0.9, 0.5, 0.1],
                                                     final_zero=True), ValueError,
                                      r"^final_zero: the explicit grid ends at 0\.1"),
    "grid-not-decreasing": (lambda: sample(_denoiser(), _noise(), steps=3, grid=[1.0, 0.5, 0.7, 0.1]),
                            ValueError, r"^grid: .*decreasing"),
    # sample: refuses what is not a sampler or a valid argument, before any model call
    "solver-ddim-inversion": (lambda: sample(_denoiser(), _noise(), solver="ddim_inversion"), ValueError,
                              r"^solver: 'ddim_inversion' is not a sampler"),
    "solver-unknown": (lambda: sample(_denoiser(), _noise(), solver="rk45"), ValueError, r"^solver: unknown"),
    "steps-zero": (lambda: sample(_denoiser(), _noise(), steps=0), ValueError, r"^steps: "),
    "steps-negative": (lambda: sample(_denoiser(), _noise(), steps=-3), ValueError, r"^steps: "),
    "steps-float": (lambda: sample(_denoiser(), _noise(), steps=2.5), ValueError, r"^steps: "),
    "steps-bool": (lambda: sample(_denoiser(), _noise(), steps=True), ValueError, r"^steps: "),
    "steps-string": (lambda: sample(_denoiser(), _noise(), steps="10"), ValueError, r"^steps: "),
    "denoiser-is-a-function": (lambda: sample(lambda x, t: x, _noise()), ValueError, r"^denoiser: .*Denoiser"),
    "denoiser-to-a-solver": (lambda: sample_ddim(lambda x, t: x, _noise(), make_grid(SCHEDULE, 2)), ValueError,
                             r"^denoiser: .*Denoiser"),
    "noise-nan": (lambda: sample(_denoiser(), torch.full((2, 2), NAN)), ValueError, r"^noise: contains NaN"),
    "noise-inf": (lambda: sample(_denoiser(), torch.full((2, 2), INF)), ValueError, r"^noise: contains NaN or inf"),
    "noise-integer": (lambda: sample(_denoiser(), torch.zeros(2, 2, dtype=torch.long)), ValueError, r"^noise: "),
    "noise-not-a-tensor": (lambda: sample(_denoiser(), [[0.0, 1.0]]), ValueError, r"^noise: "),
    "cond-not-a-dict": (lambda: sample(_denoiser(), _noise(), cond=[1]), ValueError, r"^cond: "),
    "option-of-another-solver": (lambda: sample(_denoiser(), _noise(), "dpmpp_2m", eta=0.5), ValueError,
                                 r"^eta: not an option of solver 'dpmpp_2m'"),
    # the Denoiser: guidance and clipping values
    "guidance-scale-nan": (lambda: _denoiser(guidance_scale=NAN, uncond={}), ValueError, r"^guidance_scale: "),
    "guidance-scale-inf": (lambda: _denoiser(guidance_scale=INF, uncond={}), ValueError, r"^guidance_scale: "),
    "guidance-scale-string": (lambda: _denoiser(guidance_scale="3", uncond={}), ValueError, r"^guidance_scale: "),
    "guidance-rescale-nan": (lambda: _denoiser(guidance_rescale=NAN), ValueError, r"^guidance_rescale: "),
    "uncond-not-a-dict": (lambda: _denoiser(guidance_scale=3.0, uncond=[0]), ValueError, r"^uncond: "),
    "clip-x0-nan": (lambda: _denoiser(clip_x0=NAN), ValueError, r"^clip_x0: "),
    "model-not-callable": (lambda: Denoiser("unet", SCHEDULE), ValueError, r"^model: "),
    # a model that returns NaN: one check after the loop (fixed-step), or at once (adaptive)
    "model-nan-dpmpp-2m": (lambda: sample(_denoiser(_nan_model), _noise(), steps=5), ValueError,
                           r"^model: returned NaN or inf"),
    "model-nan-ddpm": (lambda: sample(_denoiser(_nan_model), _noise(), "ddpm", 5), ValueError,
                       r"^model: returned NaN or inf"),
    "model-nan-at-late-steps": (lambda: sample(_denoiser(_nan_late_model), _noise(), "unipc", 8), ValueError,
                                r"^model: the samples .* contain NaN or inf"),
    "model-nan-guided": (lambda: sample(_denoiser(lambda x, t, c=None: x * (NAN if c is not None else 1.0),
                                                  guidance_scale=2.0, uncond={"c": None}),
                                        _noise(), "heun", 4, cond={"c": 1}), ValueError, r"^model: "),
    "t-err-larger-than-interval": (lambda: sample_dpm_solver_adaptive(_denoiser(), _noise(), make_grid(SCHEDULE, 2),
                                                                      t_err=2.0), ValueError, r"^t_err: "),
    "adaptive-nan-noise": (lambda: sample(_denoiser(), torch.full((2, 2), NAN), "dpm_solver_adaptive"),
                           ValueError, r"^noise: "),
    "adaptive-nan-x-direct": (lambda: sample_adaptive_sde(_denoiser(), torch.full((2, 2), NAN),
                                                          make_grid(SCHEDULE, 2)), ValueError, r"^x: "),
    # fit_grid: the same solver names and finite calibration states
    "fit-grid-ddim-inversion": (lambda: fit_grid(_denoiser(), "ddim_inversion", 3, _noise()), ValueError,
                                r"^solver: 'ddim_inversion' is not a sampler"),
    "fit-grid-nan-x-start": (lambda: fit_grid(_denoiser(), "ddim", 3, torch.full((2, 2), NAN)), ValueError,
                             r"^x_start: "),
    # the Trainer: a tuple of tensors is one row per sample
    "trainer-lengths-differ": (lambda: Trainer(nn.Linear(2, 2), lambda m, b: m(b[0]).mean(),
                                               (torch.zeros(10, 2), torch.zeros(9, 2)),
                                               TrainConfig(steps=1, batch_size=2, device="cpu")),
                               ValueError, r"^data: .*\[10, 9\]"),
    "trainer-not-a-tensor": (lambda: Trainer(nn.Linear(2, 2), lambda m, b: m(b[0]).mean(),
                                             (torch.zeros(10, 2), "labels"),
                                             TrainConfig(steps=1, batch_size=2, device="cpu")),
                             ValueError, r"^data: "),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_argument_is_refused_naming_it(case):
    call, error, pattern = CASES[case]
    with pytest.raises(error, match=pattern):
        call()


def test_explicit_grid_may_restate_its_own_ends():
    grid = make_grid(SCHEDULE, 4, "logsnr", final_zero=True)
    expected = sample(_denoiser(), _noise(), "ddim", 4, grid)
    again = sample(_denoiser(), _noise(), "ddim", 4, grid, final_zero=True, t_start=1.0)
    assert torch.equal(again, expected)


@pytest.mark.parametrize("solver", ["dpm_solver_adaptive", "adaptive_sde"])
def test_adaptive_solver_refuses_a_nan_model_at_once(solver):
    """Before: 10,000 iterations, then a RuntimeError blaming the tolerances."""
    denoiser = _denoiser(_nan_model)
    with pytest.raises(ValueError, match=r"^model: returned NaN or inf during adaptive sampling"):
        sample(denoiser, _noise(), solver, generator=torch.Generator().manual_seed(0))
    assert denoiser.nfe <= 3


def test_model_nan_is_reported_without_a_sync_in_the_loop(monkeypatch):
    """The NaN check of `sample` is one look at the result after the loop: inside it, a host sync raises."""

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync inside the solver loop")

    calls = []

    def model(x, t):
        if not calls:  # armed from the first model call on, when the loop has begun
            for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
                monkeypatch.setattr(torch.Tensor, name, forbidden)
        calls.append(t)
        return x * NAN

    def disarm(info):
        if info["i"] == 4:
            monkeypatch.undo()

    with pytest.raises(ValueError, match=r"^model: returned NaN"):
        sample(_denoiser(model), _noise(), steps=5, callback=disarm)


# ------------------------------------------------------------------------------------------- saved models


def _save(directory, width=3):
    Small(width, schedule=VPCosineSchedule()).save_pretrained(directory)
    return directory


def _rewrite_config(directory, change):
    path = directory / "config.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _corrupt_weights(directory):
    path = directory / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-4:] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))


def _mixed_pair(directory):
    """The weights of one save next to the config of another (what a crash between two renames would leave)."""
    _save(directory.parent / "other", width=3)
    (directory / "model.safetensors").write_bytes((directory.parent / "other" / "model.safetensors").read_bytes())


def _old_config_truncated_weights(directory):
    """A directory written before the weights were checksummed: a truncated file is still caught by name."""
    _rewrite_config(directory, lambda d: d.pop("weights"))
    path = directory / "model.safetensors"
    path.write_bytes(path.read_bytes()[:40])


LOAD_CASES = {
    "no-config": (lambda d: (d / "config.json").unlink(), Small, r"holds no config\.json"),
    "bad-json": (lambda d: (d / "config.json").write_text("{not json"), Small, r"config\.json is not valid JSON"),
    "json-list": (lambda d: (d / "config.json").write_text("[1, 2]"), Small, r"config\.json holds a JSON list"),
    "other-format": (lambda d: (d / "config.json").write_text(json.dumps({"format": "polydiff-tabular/tabddpm-1"})),
                     Small, r"config\.json has format 'polydiff-tabular/tabddpm-1'"),
    "missing-key": (lambda d: _rewrite_config(d, lambda doc: doc.pop("class")), Small,
                    r"config\.json has missing keys \['class'\]"),
    "unknown-key": (lambda d: _rewrite_config(d, lambda doc: doc.update(extra=1)), Small,
                    r"config\.json .*unknown keys \['extra'\]"),
    "config-wrong-type": (lambda d: _rewrite_config(d, lambda doc: doc.update(config=[3])), Small,
                          r"config\.json: 'config' must be a JSON dict"),
    "bad-schedule": (lambda d: _rewrite_config(d, lambda doc: doc["config"]["schedule"]["__schedule__"].update(
        q=1)), Small, r"config\.json: its config does not decode"),
    "config-does-not-build": (lambda d: _rewrite_config(d, lambda doc: doc["config"].update(depth=2)), Small,
                              r"config in .*config\.json does not build"),
    "wrong-class": (lambda d: None, OtherNet, r"^cls: .*config\.json holds a .*Small, not a .*OtherNet"),
    "weights-missing": (lambda d: (d / "model.safetensors").unlink(), Small, r"model\.safetensors is missing"),
    "weights-truncated": (lambda d: (d / "model.safetensors").write_bytes(b"\x08\x00"), Small,
                          r"model\.safetensors has 2 bytes.*truncated"),
    "weights-corrupt": (_corrupt_weights, Small, r"model\.safetensors fails the SHA-256 check"),
    "weights-from-another-save": (_mixed_pair, Small, r"model\.safetensors fails the SHA-256 check"),
    "old-config-truncated-weights": (_old_config_truncated_weights, Small,
                                     r"weights in .*model\.safetensors .*cannot be read"),
}


@pytest.mark.parametrize("case", list(LOAD_CASES), ids=list(LOAD_CASES))
def test_bad_pretrained_directory_is_a_value_error_naming_the_file(case, tmp_path):
    damage, cls, pattern = LOAD_CASES[case]
    directory = _save(tmp_path / "model")
    damage(directory)
    with pytest.raises(ValueError, match=pattern):
        load_pretrained(cls, directory)
    if case not in ("wrong-class", "config-does-not-build") and not case.startswith("weights") \
            and case != "old-config-truncated-weights":
        with pytest.raises(ValueError, match=pattern):
            read_config(directory)


def test_load_from_a_file_names_it(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    with pytest.raises(ValueError, match=r"^directory: .*model\.bin is a file"):
        Small.from_pretrained(path)


SAVE_CASES = {
    "over-a-regular-file": (lambda d: d.write_text("keep me"), r"^directory: .*model exists and is a file"),
    "foreign-config": (lambda d: (d.mkdir(), (d / "config.json").write_text('{"_class_name": "UNet2DModel"}')),
                       r"^directory: .*config\.json was not written by save_pretrained"),
    "tabular-config": (lambda d: (d.mkdir(), (d / "config.json").write_text('{"format": "polydiff-tabular/t-1"}')),
                       r"^directory: .*config\.json .*format 'polydiff-tabular/t-1'"),
}


@pytest.mark.parametrize("case", list(SAVE_CASES), ids=list(SAVE_CASES))
def test_save_refuses_to_overwrite_what_it_did_not_write(case, tmp_path):
    prepare, pattern = SAVE_CASES[case]
    target = tmp_path / "model"
    prepare(target)
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file())
    with pytest.raises(ValueError, match=pattern):
        Small(3).save_pretrained(target)
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file()) == before


def test_save_refuses_a_nan_in_the_config(tmp_path):
    with pytest.raises(ValueError, match=r"^config, metadata: "):
        save_pretrained(Small(3), tmp_path / "m", {"width": 3}, metadata={"loss": NAN})
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- schedule config round trips


def _equal_on_grid(schedule, rebuilt):
    t = torch.cat([torch.linspace(0.0, schedule.t_max, 97, dtype=torch.float64),
                   torch.tensor([schedule.t_min, schedule.t_max], dtype=torch.float64)])
    for name in ("log_snr", "alpha", "sigma"):  # bit-equal (a bridge's sigma is NaN at its pinned end)
        torch.testing.assert_close(getattr(rebuilt, name)(t), getattr(schedule, name)(t), rtol=0, atol=0,
                                   equal_nan=True, msg=name)
    assert (rebuilt.t_min, rebuilt.t_max) == (schedule.t_min, schedule.t_max)


SCHEDULES = {
    "discrete-linear": lambda: DiscreteSchedule.linear(),
    "discrete-zero-terminal-snr": lambda: DiscreteSchedule(linear_betas(1000), zero_terminal_snr=True),
    "discrete-zero-terminal-snr-clamp": lambda: DiscreteSchedule(linear_betas(50), zero_terminal_snr=True,
                                                                 terminal_log_snr=-9.0),
    "discrete-alphas-cumprod": lambda: DiscreteSchedule(alphas_cumprod=np.cumprod(1 - linear_betas(30))),
    "vp-linear": lambda: VPLinearSchedule(0.2, 15.0, t_min=1e-4, t_max=0.9),
    "vp-cosine": lambda: VPCosineSchedule(0.01, t_min=2e-3, t_max=0.99),
    "ve": lambda: VESchedule(0.02, 80.0),
    "edm": lambda: EDMSchedule(0.002, 80.0, 1.0),
    "flow": lambda: FlowSchedule(1e-3, 0.999),
    "bridge": lambda: BridgeSchedule(VPLinearSchedule(), t_T=0.9),
}


@pytest.mark.parametrize("name", list(SCHEDULES), ids=list(SCHEDULES))
def test_every_schedule_config_round_trips_through_json(name):
    schedule = SCHEDULES[name]()
    rebuilt = schedule_from_config(json.loads(json.dumps(schedule.config())))
    assert type(rebuilt) is type(schedule)
    _equal_on_grid(schedule, rebuilt)


def test_zero_terminal_snr_survives_save_and_load(tmp_path):
    """Before: config() wrote zero_terminal_snr False; after a round trip lambda(1) went from -15 to -345."""
    schedule = DiscreteSchedule(linear_betas(1000), zero_terminal_snr=True)
    Small(2, schedule=schedule).save_pretrained(tmp_path / "m")
    back = Small.from_pretrained(tmp_path / "m").config["schedule"]
    assert back.zero_terminal_snr and float(back.log_snr(torch.tensor(1.0, dtype=torch.float64))) == -15.0
    assert torch.equal(make_grid(back, 5, "logsnr"), make_grid(schedule, 5, "logsnr"))


_times = st.floats(1e-4, 0.5)


@st.composite
def schedules(draw):
    kind = draw(st.sampled_from(["discrete", "vp_linear", "vp_cosine", "ve", "edm", "flow"]))
    if kind == "discrete":
        n = draw(st.integers(2, 60))
        start = draw(st.floats(1e-5, 1e-2))
        return DiscreteSchedule(linear_betas(n, start, draw(st.floats(2e-2, 0.5))),
                                zero_terminal_snr=draw(st.booleans()),
                                terminal_log_snr=draw(st.floats(-20.0, -5.0)))
    if kind == "vp_linear":
        beta_min = draw(st.floats(1e-3, 1.0))
        return VPLinearSchedule(beta_min, beta_min + draw(st.floats(0.1, 30.0)), draw(_times),
                                draw(st.floats(0.6, 1.5)))
    if kind == "vp_cosine":
        return VPCosineSchedule(draw(st.floats(0.0, 0.1)), draw(_times), draw(st.floats(0.6, 0.999)))
    if kind in ("ve", "edm"):
        sigma_min = draw(st.floats(1e-3, 1.0))
        sigma_max = sigma_min * draw(st.floats(1.5, 1e4))
        return VESchedule(sigma_min, sigma_max) if kind == "ve" else EDMSchedule(sigma_min, sigma_max,
                                                                                 draw(st.floats(0.1, 2.0)))
    return FlowSchedule(draw(_times), draw(st.floats(0.6, 0.9999)))


@given(schedule=schedules())
def test_schedule_config_round_trip_property(schedule):
    rebuilt = schedule_from_config(json.loads(json.dumps(schedule.config())))
    _equal_on_grid(schedule, rebuilt)
    assert rebuilt.config() == schedule.config()


@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not math.isfinite(v) or v < 0),
                       st.text(max_size=3), st.none(), st.booleans()))
def test_vp_cosine_s_is_refused_unless_a_finite_non_negative_number(value):
    with pytest.raises(ValueError, match=r"^s: "):
        VPCosineSchedule(s=value)
