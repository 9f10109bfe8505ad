"""polydiff.tabular's bad-input suite: every wrong input is refused before any work is done, with the exception
type asserted and a message that names the argument (or, for a saved model, the file; for a table, the column).

Each case is (callable, exception, pattern); the callable takes a :class:`Context` (a fitted model, its frame, a
fresh folder). Like tests/core/test_bad_inputs.py, every domain package keeps this suite.
"""

import datetime
import decimal
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from polydiff.tabular import TabDDPM, TabDDPMConfig
from polydiff.tabular.evaluate import evaluate, ml_efficiency

TINY = dict(steps=5, batch_size=32, hidden=(16,), time_embedding_dim=8, sample_steps=4, progress=False)


def frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "grade": pd.Categorical(rng.choice(["A", "B", "C"], n), categories=["C", "B", "A"], ordered=True),
        "amount": np.round(rng.gamma(2.0, 50.0, n), 2),
        "visits": rng.integers(1, 9, n),
        "city": rng.choice(["Oslo", "Rome"], n).astype(object),
        "label": rng.choice(["no", "yes"], n).astype(object),
    })


class Context:
    def __init__(self, model, unconditional, df, saved, tmp_path):
        self.model, self.unconditional, self.df, self._saved, self.tmp = model, unconditional, df, saved, tmp_path

    def folder(self):
        """A fresh copy of a save_pretrained folder of ``model``."""
        target = self.tmp / "copy"
        shutil.copytree(self._saved, target)
        return target

    def edit_config(self, change):
        folder = self.folder()
        document = json.loads((folder / "config.json").read_text())
        change(document)
        (folder / "config.json").write_text(json.dumps(document))
        return folder


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    df = frame()
    model = TabDDPM(**TINY).fit(df, target="label")
    unconditional = TabDDPM(**TINY, conditional=False).fit(df, target="label")
    saved = tmp_path_factory.mktemp("saved") / "model"
    model.save_pretrained(saved)
    return model, unconditional, df, saved


@pytest.fixture
def ctx(fitted, tmp_path):
    return Context(*fitted, tmp_path)


def _core_folder(c):
    from polydiff.core.nn import MLPDenoiser
    from polydiff.core.pretrained import save_pretrained

    return save_pretrained(MLPDenoiser(2, hidden=(4,)), c.tmp / "core", {"dim": 2, "hidden": [4]})


def _truncate(c):
    folder = c.folder()
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    return folder


def _other_weights(c):
    folder = c.folder()
    other = TabDDPM(**{**TINY, "seed": 1}).fit(c.df, target="label")
    other.save_pretrained(c.tmp / "other")
    shutil.copy(c.tmp / "other" / "model.safetensors", folder / "model.safetensors")
    return folder


def _no_checksum_other_weights(c):
    """A save cut between its two renames, from before the checksum existed: a wrong-shaped network."""
    folder = c.edit_config(lambda d: d.pop("weights"))
    other = TabDDPM(**{**TINY, "hidden": (8,)}).fit(c.df, target="label")
    other.save_pretrained(c.tmp / "other")
    shutil.copy(c.tmp / "other" / "model.safetensors", folder / "model.safetensors")
    return folder


def _file(c):
    path = c.tmp / "model.txt"
    path.write_text("not a folder")
    return path


def _with(df, **columns):
    return df.assign(**columns)


ERR = ValueError
REAL = frame(60, seed=1)
REAL_TEST = frame(30, seed=2)
EV = dict(seeds=(0,), iterations=5, reference=False)

CASES = [
    # ---- the configuration: refused on construction, naming the field
    pytest.param(lambda c: TabDDPM(solver="ddim_inversion"), ERR, r"^solver:", id="config-solver-inversion"),
    pytest.param(lambda c: TabDDPM(solver="nope"), ERR, r"^solver:", id="config-solver-unknown"),
    pytest.param(lambda c: TabDDPMConfig(grid="unifrom"), ERR, r"^grid:", id="config-grid-unknown"),
    pytest.param(lambda c: TabDDPM(grid=5), ERR, r"^grid:", id="config-grid-not-a-name"),
    pytest.param(lambda c: TabDDPM(stepz=3), ERR, r"^stepz:", id="config-unknown-option"),
    pytest.param(lambda c: TabDDPM(dropout=1.5), ERR, r"^dropout:", id="config-dropout"),
    pytest.param(lambda c: TabDDPM(ema_decay=1.0), ERR, r"^ema_decay:", id="config-ema-decay"),
    pytest.param(lambda c: TabDDPM(conditional="yes"), ERR, r"^conditional:", id="config-conditional-not-bool"),
    pytest.param(lambda c: TabDDPM(weight_decay="0"), ERR, r"^weight_decay:", id="config-weight-decay-text"),
    pytest.param(lambda c: TabDDPM(TabDDPMConfig(), steps=3), ERR, r"^options:", id="config-and-options"),
    pytest.param(lambda c: TabDDPM({"steps": 3}), ERR, r"^config:", id="config-a-dict"),
    pytest.param(lambda c: TabDDPM(device="gpu0"), ERR, r"^device:", id="device-malformed"),
    pytest.param(lambda c: TabDDPM(device="cuda:99"), ERR, r"^device:", id="device-absent-cuda"),
    # ---- fit: arguments and values a saved model cannot hold
    pytest.param(lambda c: TabDDPM(**TINY).fit(c.df, categorical="city"), ERR, r"^categorical:.*\['city'\]",
                 id="fit-categorical-a-string"),
    pytest.param(lambda c: TabDDPM(**TINY).fit(c.df, discrete="visits"), ERR, r"^discrete:",
                 id="fit-discrete-a-string"),
    pytest.param(lambda c: TabDDPM(**TINY).fit(c.df, target=["label"]), ERR, r"^target:.*one column",
                 id="fit-target-a-list"),
    pytest.param(lambda c: TabDDPM(**TINY).fit(c.df, target="nope"), ERR, r"^target:.*'nope'",
                 id="fit-target-unknown"),
    pytest.param(lambda c: TabDDPM(**TINY).fit(c.df, categorical=["city"], discrete=["city"]), ERR,
                 r"^categorical, discrete:", id="fit-listed-twice"),
    pytest.param(lambda c: TabDDPM(**TINY).fit(_with(c.df, when=[datetime.date(2020, 1, d % 28 + 1)
                                                                  for d in range(40)])),
                 ERR, r"^df: column 'when'.*datetime\.date", id="fit-object-dates"),
    pytest.param(lambda c: TabDDPM(**TINY).fit(_with(c.df, price=[decimal.Decimal("1.5")] * 40)), ERR,
                 r"^df: column 'price'.*Decimal", id="fit-decimals"),
    pytest.param(lambda c: TabDDPM(**TINY).fit(_with(c.df, cells=[[1, 2]] * 40)), ERR,
                 r"^df: column 'cells'.*unhashable", id="fit-list-cells"),
    pytest.param(lambda c: TabDDPM(**TINY).fit(_with(c.df, stamp=pd.Timestamp("2020-01-01"))), ERR,
                 r"^df: column 'stamp'", id="fit-datetime64"),
    pytest.param(lambda c: TabDDPM(**TINY).fit(c.df.rename(columns={"city": datetime.date(2020, 1, 1)})), ERR,
                 r"^df: the column name", id="fit-unsavable-column-name"),
    pytest.param(lambda c: TabDDPM(**TINY).fit(_with(c.df, amount=np.r_[np.inf, np.ones(39)])), ERR,
                 r"^df: column 'amount'.*infinite", id="fit-inf"),
    pytest.param(lambda c: TabDDPM(**TINY).fit(c.df.to_numpy()), ERR, r"^df:", id="fit-not-a-frame"),
    pytest.param(lambda c: TabDDPM(**TINY).fit(c.df.iloc[:0]), ERR, r"^df:", id="fit-empty"),
    # ---- sample: every override checked before any work
    pytest.param(lambda c: TabDDPM(**TINY).sample(3), ERR, r"^sample:.*not fitted", id="sample-unfitted"),
    pytest.param(lambda c: c.model.sample(0), ERR, r"^n:", id="sample-n-zero"),
    pytest.param(lambda c: c.model.sample(-3), ERR, r"^n:", id="sample-n-negative"),
    pytest.param(lambda c: c.model.sample(2.5), ERR, r"^n:", id="sample-n-float"),
    pytest.param(lambda c: c.model.sample(5, seed=1.5), ERR, r"^seed:", id="sample-seed-float"),
    pytest.param(lambda c: c.model.sample(5, seed="0"), ERR, r"^seed:", id="sample-seed-text"),
    pytest.param(lambda c: c.model.sample(5, seed=-1), ERR, r"^seed:", id="sample-seed-negative"),
    pytest.param(lambda c: c.model.sample(5, batch_size=0), ERR, r"^batch_size:", id="sample-batch-zero"),
    pytest.param(lambda c: c.model.sample(5, batch_size=-2), ERR, r"^batch_size:", id="sample-batch-negative"),
    pytest.param(lambda c: c.model.sample(5, solver="ddim_inversion"), ERR, r"^solver:",
                 id="sample-solver-inversion"),
    pytest.param(lambda c: c.model.sample(5, solver="bogus"), ERR, r"^solver:", id="sample-solver-unknown"),
    pytest.param(lambda c: c.model.sample(5, solver="paradigms"), ERR, r"^solver:.*batch",
                 id="sample-solver-batched-times"),
    pytest.param(lambda c: c.model.sample(5, steps=0), ERR, r"^steps:", id="sample-steps-zero"),
    pytest.param(lambda c: c.model.sample(5, steps=5000), ERR, r"^steps:", id="sample-steps-too-many"),
    pytest.param(lambda c: c.model.sample(5, progress="yes"), ERR, r"^progress:", id="sample-progress"),
    pytest.param(lambda c: c.model.sample(5, eta_typo=1.0), ERR, r"^eta_typo:", id="sample-unknown-option"),
    pytest.param(lambda c: c.model.sample(5, generator=torch.Generator()), ERR, r"^generator:.*seed=",
                 id="sample-generator"),
    pytest.param(lambda c: c.model.sample(5, conditions={"label": None}), ERR,
                 r"^conditions: column 'label'.*missing", id="conditions-none"),
    pytest.param(lambda c: c.model.sample(5, conditions={"label": float("nan")}), ERR,
                 r"^conditions: column 'label'.*missing", id="conditions-nan"),
    pytest.param(lambda c: c.model.sample(5, conditions={"label": ["yes", None, "no", "no", "yes"]}), ERR,
                 r"^conditions: column 'label'.*missing", id="conditions-none-in-list"),
    pytest.param(lambda c: c.model.sample(5, conditions={"label": "maybe"}), ERR,
                 r"^conditions: column 'label'.*'maybe'.*unseen", id="conditions-unseen"),
    pytest.param(lambda c: c.model.sample(5, conditions={"grade": "A"}), ERR, r"^conditions:.*target",
                 id="conditions-not-the-target"),
    pytest.param(lambda c: c.model.sample(5, conditions=["yes"]), ERR, r"^conditions:", id="conditions-a-list"),
    pytest.param(lambda c: c.model.sample(5, conditions={"label": ["yes", "no"]}), ERR, r"^conditions:.*n=5",
                 id="conditions-wrong-length"),
    pytest.param(lambda c: c.unconditional.sample(5, conditions={"label": "yes"}), ERR,
                 r"^conditions:.*conditional=False", id="conditions-unconditional-model"),
    # ---- save / load: a ValueError naming the file
    pytest.param(lambda c: TabDDPM(**TINY).save_pretrained(c.tmp / "m"), ERR, r"^save_pretrained:",
                 id="save-unfitted"),
    pytest.param(lambda c: c.model.save_pretrained(_file(c)), ERR, r"^path:.*existing file", id="save-over-file"),
    pytest.param(lambda c: c.model.save_pretrained(_core_folder(c)), ERR, r"^path:.*config\.json was not written",
                 id="save-over-another-model"),
    pytest.param(lambda c: TabDDPM.from_pretrained(c.tmp / "absent"), ERR, r"^path:", id="load-absent"),
    pytest.param(lambda c: TabDDPM.from_pretrained(c.tmp), ERR, r"^path:.*config\.json", id="load-no-config"),
    pytest.param(lambda c: TabDDPM.from_pretrained(_file(c)), ERR, r"^path:", id="load-a-file"),
    pytest.param(lambda c: TabDDPM.from_pretrained(
        (lambda f: ((f / "config.json").write_text("{not json"), f)[1])(c.folder())), ERR,
        r"config\.json: not valid JSON", id="load-bad-json"),
    pytest.param(lambda c: TabDDPM.from_pretrained(c.edit_config(lambda d: d.pop("clip"))), ERR,
                 r"config\.json: missing keys \['clip'\]", id="load-missing-key"),
    pytest.param(lambda c: TabDDPM.from_pretrained(c.edit_config(lambda d: d.update(extra=1))), ERR,
                 r"config\.json: unknown keys \['extra'\]", id="load-unknown-key"),
    pytest.param(lambda c: TabDDPM.from_pretrained(c.edit_config(lambda d: d["config"].pop("hidden"))), ERR,
                 r"config\.json: config: missing fields \['hidden'\]", id="load-missing-config-field"),
    pytest.param(lambda c: TabDDPM.from_pretrained(c.edit_config(lambda d: d["config"].update(eta=0))), ERR,
                 r"config\.json: config: unknown fields \['eta'\]", id="load-unknown-config-field"),
    pytest.param(lambda c: TabDDPM.from_pretrained(c.edit_config(lambda d: d["config"].update(solver="x"))), ERR,
                 r"config\.json: config: solver:", id="load-bad-config-value"),
    pytest.param(lambda c: TabDDPM.from_pretrained(c.edit_config(lambda d: d.update(format="other/1"))), ERR,
                 r"config\.json: holds format 'other/1'", id="load-other-format"),
    pytest.param(lambda c: TabDDPM.from_pretrained(c.edit_config(lambda d: d["transformer"].pop("specs"))), ERR,
                 r"config\.json: the transformer spec", id="load-broken-spec"),
    pytest.param(lambda c: TabDDPM.from_pretrained(c.edit_config(lambda d: d.update(label_counts=[1]))), ERR,
                 r"config\.json: label_counts", id="load-bad-label-counts"),
    pytest.param(lambda c: TabDDPM.from_pretrained(_core_folder(c)), ERR, r"config\.json: holds a core pretrained",
                 id="load-core-folder"),
    pytest.param(lambda c: TabDDPM.from_pretrained(_truncate(c)), ERR, r"model\.safetensors has \d+ bytes, .*config\.json was saved with",
                 id="load-truncated-weights"),
    pytest.param(lambda c: TabDDPM.from_pretrained(_other_weights(c)), ERR, r"model\.safetensors (has|fails)",
                 id="load-weights-of-another-save"),
    pytest.param(lambda c: TabDDPM.from_pretrained(_no_checksum_other_weights(c)), ERR,
                 r"model\.safetensors: the weights do not fit", id="load-unchecked-mismatched-weights"),
    pytest.param(lambda c: TabDDPM.from_pretrained(
        (lambda f: ((f / "model.safetensors").unlink(), f)[1])(c.folder())), ERR, r"model\.safetensors: missing",
        id="load-no-weights"),
    pytest.param(lambda c: TabDDPM.from_pretrained(c.folder(), device="gpu0"), ERR, r"^device:",
                 id="load-bad-device"),
    # ---- evaluate: the frames, the target, the task, the seeds
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL, "label", seeds=(), iterations=5), ERR, r"^seeds:",
                 id="evaluate-no-seeds"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL, "label", seeds=(0.5,), iterations=5), ERR, r"^seeds:",
                 id="evaluate-float-seed"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL, "label", seeds=(1, 1), iterations=5), ERR, r"^seeds:",
                 id="evaluate-repeated-seed"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL, "label", seeds=3, iterations=5), ERR, r"^seeds:",
                 id="evaluate-seeds-a-number"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL, "label", "bogus", **EV), ERR, r"^task:",
                 id="evaluate-task-bogus"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL, None, "bogus", **EV), ERR, r"^task:",
                 id="evaluate-task-bogus-without-target"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL, "label", "regression", **EV), ERR,
                 r"^task:.*numeric", id="evaluate-regression-on-categories"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL, "nope", **EV), ERR, r"^target:.*train",
                 id="evaluate-target-unknown"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST.drop(columns="label"), REAL, "label", **EV), ERR,
                 r"^target:.*test", id="evaluate-target-missing-from-test"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL.drop(columns="label"), "label", **EV), ERR,
                 r"^target:.*synthetic", id="evaluate-target-missing-from-synthetic"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST.drop(columns="city"), REAL, "label", **EV), ERR,
                 r"^test:.*'city'", id="evaluate-test-lacks-a-column"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL.drop(columns="city"), "label", **EV), ERR,
                 r"^synthetic:.*'city'", id="evaluate-synthetic-lacks-a-column"),
    pytest.param(lambda c: evaluate(REAL.iloc[:0], REAL_TEST, REAL, "label", **EV), ERR, r"^train:",
                 id="evaluate-empty-train"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST.iloc[:0], REAL, "label", **EV), ERR, r"^test:",
                 id="evaluate-empty-test"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL.iloc[:0], "label", **EV), ERR, r"^synthetic:",
                 id="evaluate-empty-synthetic"),
    pytest.param(lambda c: evaluate(REAL.to_numpy(), REAL_TEST, REAL, "label", **EV), ERR, r"^train:",
                 id="evaluate-train-not-a-frame"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL, "label", seeds=(0,), iterations=0), ERR,
                 r"^iterations:", id="evaluate-iterations-zero"),
    pytest.param(lambda c: evaluate(REAL, REAL_TEST, REAL, "label", seeds=(0,), iterations=5, reference="yes"),
                 ERR, r"^reference:", id="evaluate-reference"),
    pytest.param(lambda c: ml_efficiency(REAL, REAL_TEST, "label", seeds=()), ERR, r"^seeds:",
                 id="ml-efficiency-no-seeds"),
    pytest.param(lambda c: ml_efficiency(REAL, REAL_TEST, "label", "bogus", seeds=(0,)), ERR, r"^task:",
                 id="ml-efficiency-task-bogus"),
]


@pytest.mark.parametrize(("call", "error", "pattern"), CASES)
def test_bad_input_is_refused_naming_the_argument(ctx, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(ctx)


def test_the_suite_is_large_enough():
    assert len(CASES) >= 30


# ---------------------------------------------------------------------------------------------- TabSyn, TabDiff

def _latent_models():
    from polydiff.tabular.tabdiff import TabDiff
    from polydiff.tabular.tabsyn import TabSyn

    return {"TabSyn": (TabSyn, dict(vae_steps=3, steps=3, hidden=(8,), sample_steps=2)),
            "TabDiff": (TabDiff, dict(steps=3, hidden=(8,), sample_steps=2))}


@pytest.fixture(scope="module")
def latent_fitted(tmp_path_factory):
    fitted = {}
    for name, (cls, tiny) in _latent_models().items():
        model = cls(**tiny).fit(frame(), target="label")
        saved = tmp_path_factory.mktemp(name) / "model"
        model.save_pretrained(saved)
        fitted[name] = (cls, tiny, model, saved)
    return fitted


def _copy(saved, tmp, change=None):
    folder = tmp / "copy"
    shutil.copytree(saved, folder)
    if change is not None:
        document = json.loads((folder / "config.json").read_text())
        change(document)
        (folder / "config.json").write_text(json.dumps(document))
    return folder


LATENT_CASES = [
    (lambda cls, tiny, m, s, tmp: cls(bogus=1), r"^bogus: not an option of Tab(Syn|Diff)"),
    (lambda cls, tiny, m, s, tmp: cls(steps=0), r"^steps: expected a positive integer"),
    (lambda cls, tiny, m, s, tmp: cls(hidden=(8, -1)), r"^hidden:"),
    (lambda cls, tiny, m, s, tmp: cls(lr=float("nan")), r"^lr"),
    (lambda cls, tiny, m, s, tmp: cls(seed=-1), r"^seed:"),
    (lambda cls, tiny, m, s, tmp: cls(nan="drop"), r"^nan:"),
    (lambda cls, tiny, m, s, tmp: cls(config=TabDDPMConfig()), r"^config: expected a Tab(Syn|Diff)Config"),
    (lambda cls, tiny, m, s, tmp: cls(device="gpu:x"), r"^device:"),
    (lambda cls, tiny, m, s, tmp: cls(**tiny).sample(5), r"^sample: the model is not fitted"),
    (lambda cls, tiny, m, s, tmp: cls(**tiny).fit(frame(), target="nope"), r"^target:"),
    (lambda cls, tiny, m, s, tmp: cls(**tiny).fit(frame().to_numpy()), r"^df:"),
    (lambda cls, tiny, m, s, tmp: cls(**tiny).fit(_with(frame(), when=[datetime.date(2020, 1, 1)] * 40)),
     r"when"),
    (lambda cls, tiny, m, s, tmp: m.sample(0), r"^n: expected a positive integer"),
    (lambda cls, tiny, m, s, tmp: m.sample(5, seed=-1), r"^seed:"),
    (lambda cls, tiny, m, s, tmp: m.sample(5, steps=0), r"^steps:"),
    (lambda cls, tiny, m, s, tmp: m.sample(5, batch_size=0), r"^batch_size:"),
    (lambda cls, tiny, m, s, tmp: cls.from_pretrained(tmp / "missing"), r"^path: .* is not a folder"),
    (lambda cls, tiny, m, s, tmp: cls.from_pretrained(_copy(s, tmp, lambda d: d.update(format="x"))),
     r"config.json: holds format 'x', not a Tab(Syn|Diff) model"),
    (lambda cls, tiny, m, s, tmp: cls.from_pretrained(_copy(s, tmp, lambda d: d["config"].update(steps=0))),
     r"config.json: config: steps"),
    (lambda cls, tiny, m, s, tmp: cls.from_pretrained(_copy(s, tmp, lambda d: d.pop("state"))),
     r"config.json: missing keys \['state'\]"),
    (lambda cls, tiny, m, s, tmp: cls.from_pretrained(_copy(s, tmp, lambda d: d["state"].update(clip=-1))),
     r"config.json: clip"),
    (lambda cls, tiny, m, s, tmp: TabDDPM.from_pretrained(s), r"not a TabDDPM model"),
    (lambda cls, tiny, m, s, tmp: m.save_pretrained(_copy(s, tmp, lambda d: d.update(format="other"))),
     r"^path: .*config.json was not written by Tab(Syn|Diff).save_pretrained"),
]


@pytest.mark.parametrize("name", ["TabSyn", "TabDiff"])
@pytest.mark.parametrize(("call", "pattern"), LATENT_CASES)
def test_latent_models_refuse_bad_input_naming_the_argument(latent_fitted, tmp_path, name, call, pattern):
    cls, tiny, model, saved = latent_fitted[name]
    with pytest.raises(ValueError, match=pattern):
        call(cls, tiny, model, saved, tmp_path)


def test_tabsyn_refuses_a_damaged_latent_scale(latent_fitted, tmp_path):
    cls, _, _, saved = latent_fitted["TabSyn"]
    folder = _copy(saved, tmp_path, lambda d: d["state"].update(latent_scale=[0.0] * len(d["state"]["latent_scale"])))
    with pytest.raises(ValueError, match="latent_scale"):
        cls.from_pretrained(folder)
