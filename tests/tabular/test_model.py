"""TabDDPM end to end with tiny budgets: the DataFrame contract (order, dtypes, levels, integers, bounds), seeds,
conditions, NaN/inf, single rows and constants, save/load, wide tables."""

import numpy as np
import pandas as pd
import pytest
import torch

from polydiff.tabular import TabDDPM

TINY = dict(steps=20, batch_size=64, hidden=(32, 32), time_embedding_dim=16, sample_steps=10, progress=False)


def frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "grade": pd.Categorical(rng.choice(["A", "B", "C"], n), categories=["C", "B", "A"], ordered=True),
        "amount": np.round(rng.gamma(2.0, 50.0, n), 2),
        "visits": rng.integers(1, 9, n),
        "member": rng.random(n) < 0.4,
        "label": rng.choice(["no", "yes"], n).astype(object),
    })


@pytest.fixture(scope="module")
def fitted():
    df = frame()
    return df, TabDDPM(**TINY).fit(df, target="label")


def test_sample_keeps_order_dtypes_levels_integers_and_bounds(fitted):
    df, model = fitted
    out = model.sample(300, seed=1)
    assert list(out.columns) == list(df.columns)
    assert (out.dtypes == df.dtypes).all()
    assert list(out["grade"].cat.categories) == ["C", "B", "A"] and out["grade"].cat.ordered
    assert set(out["label"]) <= {"no", "yes"}
    assert set(out["visits"]) <= set(df["visits"])  # integer column: observed values only
    assert out["amount"].between(df["amount"].min(), df["amount"].max()).all()
    np.testing.assert_array_equal(out["amount"], out["amount"].round(2))  # the data shows 2 decimals
    assert not out.isna().any().any()


def test_same_seed_same_rows_and_other_seed_differs(fitted):
    _, model = fitted
    pd.testing.assert_frame_equal(model.sample(50, seed=7), model.sample(50, seed=7))
    assert not model.sample(50, seed=7).equals(model.sample(50, seed=8))


def test_conditions_fix_the_target_and_unseen_value_raises(fitted):
    _, model = fitted
    out = model.sample(40, conditions={"label": "yes"}, seed=0)
    assert (out["label"] == "yes").all()
    values = ["no", "yes"] * 10
    assert list(model.sample(20, conditions={"label": values}, seed=0)["label"]) == values
    with pytest.raises(ValueError, match="'label'.*'maybe'.*unseen"):
        model.sample(5, conditions={"label": "maybe"})
    with pytest.raises(ValueError, match="only the categorical target"):
        model.sample(5, conditions={"grade": "A"})


def test_save_and_load_give_the_same_samples(fitted, tmp_path):
    _, model = fitted
    model.save_pretrained(tmp_path / "model")
    loaded = TabDDPM.from_pretrained(tmp_path / "model")
    pd.testing.assert_frame_equal(model.sample(30, seed=3), loaded.sample(30, seed=3))


def test_every_core_solver_family_runs_the_joint_chain(fitted):
    _, model = fitted
    for solver in ("ddpm", "ddim", "dpmpp_2m", "unipc"):
        out = model.sample(20, seed=0, solver=solver, steps=5)
        assert len(out) == 20 and not out.isna().any().any()


def test_every_sampler_tabddpm_accepts_runs():
    """Each name the config accepts samples (paradigms, which batches time steps, is refused up front)."""
    from polydiff.tabular.model import _samplers

    df = frame(40)
    model = TabDDPM(**{**TINY, "steps": 3, "hidden": (8,)}).fit(df, target="label")
    assert "paradigms" not in _samplers() and "ddpm" in _samplers()
    for solver in _samplers():
        assert model.sample(4, seed=0, solver=solver, steps=4).shape == (4, df.shape[1]), solver


def test_nan_as_category_and_impute():
    df = frame()
    df.loc[::4, "amount"] = np.nan
    df.loc[::6, "grade"] = np.nan
    kept = TabDDPM(**TINY, nan="category").fit(df).sample(200, seed=0)
    assert kept.dtypes.equals(df.dtypes)
    imputed = TabDDPM(**TINY, nan="impute").fit(df).sample(200, seed=0)
    assert not imputed.isna().any().any()


def test_inf_input_raises():
    df = frame().assign(amount=lambda d: d["amount"].where(d.index != 0, -np.inf))
    with pytest.raises(ValueError, match="'amount'.*infinite"):
        TabDDPM(**TINY).fit(df)


def test_single_row_and_constant_columns():
    df = frame().assign(const=3.5, word="x")
    out = TabDDPM(**TINY).fit(df).sample(10, seed=0)
    assert (out["const"] == 3.5).all() and (out["word"] == "x").all()
    single = frame(1)
    out = TabDDPM(**TINY).fit(single, target="label").sample(5, seed=0)
    pd.testing.assert_frame_equal(out, pd.concat([single] * 5, ignore_index=True))


def test_categorical_only_and_numeric_only_tables():
    df = frame()
    cats = TabDDPM(**TINY).fit(df[["grade", "member"]]).sample(10, seed=0)
    nums = TabDDPM(**TINY).fit(df[["amount", "visits"]]).sample(10, seed=0)
    assert list(cats.columns) == ["grade", "member"] and list(nums.columns) == ["amount", "visits"]


def test_wide_table_with_many_levels_has_no_nans():
    rng = np.random.default_rng(0)
    n = 200
    columns = {f"num{i}": rng.standard_normal(n) * (i + 1) for i in range(200)}
    columns.update({f"cat{i}": rng.choice([f"l{j}" for j in range(300 if i == 0 else 5)], n) for i in range(100)})
    df = pd.DataFrame(columns)
    model = TabDDPM(**{**TINY, "steps": 5}).fit(df)
    out = model.sample(100, seed=0)
    assert out.shape == (100, 300) and not out.isna().any().any()
    assert np.isfinite(out.select_dtypes("number").to_numpy()).all()


def test_bad_config_values_raise_naming_the_field():
    with pytest.raises(ValueError, match="steps"):
        TabDDPM(steps=0)
    with pytest.raises(ValueError, match="solver"):
        TabDDPM(solver="nope")
    with pytest.raises(ValueError, match="nan"):
        TabDDPM(nan="drop")
    with pytest.raises(ValueError, match="not fitted"):
        TabDDPM().sample(3)


@pytest.mark.slow
def test_training_reduces_the_loss_and_learns_class_balance():
    """A learnable signal: a 90/10 categorical column is reproduced at about 90/10 after 600 steps (0.63 after 150: undertrained)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.standard_normal(400), "c": np.where(rng.random(400) < 0.9, "a", "b")})
    model = TabDDPM(**{**TINY, "steps": 600, "batch_size": 128}).fit(df)
    share = (model.sample(2000, seed=0)["c"] == "a").mean()
    assert 0.8 < share < 0.97


def test_default_step_budget_is_400_epochs_clipped():
    from polydiff.tabular.model import TabDDPMConfig, resolved_steps

    config = TabDDPMConfig()
    assert resolved_steps(config, 1666) == 2000              # 1302 epochs-steps, raised to the minimum
    assert resolved_steps(config, 3000) == 2344              # ceil(400 * 3000 / 512)
    assert resolved_steps(config, 53940) == 5000             # capped
    assert resolved_steps(TabDDPMConfig(steps=123), 53940) == 123
    assert resolved_steps(config, 100) == 2000               # batch shrinks to the table: 400 epochs = 400 steps
    with pytest.raises(ValueError, match="min_steps"):
        TabDDPMConfig(min_steps=10, max_steps=5)


def test_fit_is_reproducible_whatever_ran_before():
    """Regression: the network was built before seeding, so its initial weights depended on the global RNG."""
    df = frame()
    first = TabDDPM(**TINY).fit(df, target="label").sample(30, seed=0)
    torch.rand(1000)  # move the global generator
    second = TabDDPM(**TINY).fit(df, target="label").sample(30, seed=0)
    pd.testing.assert_frame_equal(first, second)


# ------------------------------------------------------------------------ reliability (issue 8) and device


def test_a_failed_save_leaves_the_previous_model_intact(fitted, tmp_path):
    """Regression: the weights were written before the config failed to serialise, so the folder held new
    weights with the old config.json (it then failed to load, or loaded and sampled one constant)."""
    import datetime

    _, model = fitted
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    before = {name: (folder / name).read_bytes() for name in ("config.json", "model.safetensors")}
    other = TabDDPM(**{**TINY, "hidden": (8,)}).fit(frame(), target="label")
    other.transformer.specs["label"].levels.append(datetime.date(2020, 1, 1))  # past fit's check: unsavable
    with pytest.raises(ValueError, match="save_pretrained: .*nothing was written"):
        other.save_pretrained(folder)
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]  # no staging left
    pd.testing.assert_frame_equal(TabDDPM.from_pretrained(folder).sample(20, seed=0), model.sample(20, seed=0))


def test_save_replaces_only_its_own_files(fitted, tmp_path, monkeypatch):
    _, model = fitted
    (tmp_path / "split.csv").write_text("a\n1\n")
    model.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)  # over an earlier save
    assert (tmp_path / "split.csv").read_text() == "a\n1\n"
    monkeypatch.chdir(tmp_path)
    model.save_pretrained(".")
    assert TabDDPM.from_pretrained(".").sample(3, seed=0).shape == (3, 5)


def test_fit_refuses_values_a_save_cannot_hold_naming_the_column():
    import datetime

    df = frame().assign(when=datetime.date(2020, 1, 1))
    with pytest.raises(ValueError, match="column 'when'.*datetime.date"):
        TabDDPM(**TINY).fit(df)


def test_unconditional_model_learns_the_target_jointly():
    """Regression: with conditional=False the target was drawn from its marginal, independently of every other
    column (agreement 0.5 here, where the data has 1.0). A short, fast-learning fit reaches about 0.97."""
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "blue"], 300)
    df = pd.DataFrame({"colour": colour, "y": np.where(colour == "red", "yes", "no")})
    model = TabDDPM(**{**TINY, "steps": 150, "batch_size": 128, "lr": 1e-2, "hidden": (64, 64), "sample_steps": 20},
                    conditional=False).fit(df, target="y")
    out = model.sample(500, seed=0)
    assert ((out["colour"] == "red") == (out["y"] == "yes")).mean() > 0.85
    assert model.num_labels == 0 and "y" in model.transformer.categorical_columns  # one more categorical column


def test_conditions_on_missing_target_values_follow_the_nan_mode():
    """A target with missing values and nan="category" has the level NaN, so conditions may ask for it; with no
    missing values (the fitted fixture) None/NaN is refused (tests/tabular/test_bad_inputs.py)."""
    df = frame().astype({"label": object})
    df.loc[::5, "label"] = None
    model = TabDDPM(**TINY).fit(df, target="label")
    assert model.sample(6, conditions={"label": None}, seed=0)["label"].isna().all()
    assert model.sample(6, conditions={"label": float("nan")}, seed=0)["label"].isna().all()


def test_odd_column_names_and_values_survive_fit_save_load_sample(tmp_path):
    """Non-string column names (int, None, a MultiIndex) stay as they were, True stays apart from 1 in an object
    column, int64 ids beyond 2**53 stay exact, tuple levels stay tuples after save/load."""
    rng = np.random.default_rng(0)
    n = 60
    ids = np.int64(2**60) + rng.choice(np.arange(0, 40, 2), n)  # even offsets: odd ids never appear
    df = pd.DataFrame({7: rng.standard_normal(n), None: rng.choice(["a", "b"], n),
                       "mixed": pd.Series([True, 1, "x", 0, False] * 12, dtype=object), "id": ids,
                       "pair": pd.Series([(1, "a"), (2, "b"), (3, "c")] * 20, dtype=object)})
    model = TabDDPM(**TINY).fit(df)
    model.save_pretrained(tmp_path / "m")
    out = TabDDPM.from_pretrained(tmp_path / "m").sample(200, seed=0)
    assert list(out.columns) == [7, None, "mixed", "id", "pair"] and (out.dtypes.values == df.dtypes.values).all()
    kinds = {(type(v), v) for v in out["mixed"]}
    assert kinds <= {(bool, True), (bool, False), (int, 1), (int, 0), (str, "x")} and (bool, True) in kinds
    assert (int, 1) in kinds  # 1 and True both sampled, as two levels
    assert set(out["id"]) <= set(df["id"]) and out["id"].dtype == np.int64
    assert set(out["pair"]) <= {(1, "a"), (2, "b"), (3, "c")} and all(type(v) is tuple for v in out["pair"])

    multi = pd.DataFrame(rng.standard_normal((n, 2)), columns=pd.MultiIndex.from_tuples([("x", 1), ("x", 2)],
                                                                                         names=["group", "k"]))
    model = TabDDPM(**TINY).fit(multi)
    model.save_pretrained(tmp_path / "multi")
    out = TabDDPM.from_pretrained(tmp_path / "multi").sample(5, seed=0)
    pd.testing.assert_index_equal(out.columns, multi.columns)


def test_device_argument_trains_and_samples_on_cpu(tmp_path):
    df = frame()
    model = TabDDPM(**TINY, device="cpu").fit(df, target="label")
    assert model.device == torch.device("cpu") and next(model.network.parameters()).device.type == "cpu"
    pd.testing.assert_frame_equal(model.sample(20, seed=0), TabDDPM(**TINY).fit(df, target="label").sample(20, seed=0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_cuda_trains_and_samples_on_the_gpu(tmp_path):
    df = frame()
    model = TabDDPM(**TINY, device="cuda").fit(df, target="label")
    assert next(model.network.parameters()).is_cuda
    out = model.sample(300, seed=0, batch_size=128)
    assert list(out.columns) == list(df.columns) and (out.dtypes == df.dtypes).all()
    pd.testing.assert_frame_equal(out, model.sample(300, seed=0, batch_size=128))
    assert (model.sample(10, conditions={"label": "yes"}, seed=0)["label"] == "yes").all()
    for solver in ("ddim", "dpmpp_2m", "unipc"):
        assert len(model.sample(10, seed=0, solver=solver, steps=4)) == 10
    model.save_pretrained(tmp_path / "gpu")
    cpu = TabDDPM.from_pretrained(tmp_path / "gpu")  # saved from the GPU, loaded on the CPU
    assert next(cpu.network.parameters()).device.type == "cpu" and len(cpu.sample(5, seed=0)) == 5
    again = TabDDPM.from_pretrained(tmp_path / "gpu", device="cuda")
    pd.testing.assert_frame_equal(again.sample(50, seed=1), model.sample(50, seed=1))
    categorical_only = TabDDPM(**TINY, device="cuda").fit(df[["grade", "label"]], target="label")
    assert len(categorical_only.sample(10, seed=0)) == 10
