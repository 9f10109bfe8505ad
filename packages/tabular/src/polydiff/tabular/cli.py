"""``polydiff tabular fit | sample | evaluate``: TabDDPM on table files from the command line.

    polydiff tabular fit my.csv --target y --out model/          # trains on 70 %, keeps 30 % held out
    polydiff tabular sample model/ -n 10000 --out synth.csv
    polydiff tabular evaluate synth.csv --model model/           # = --train model/train.csv --test model/test.csv

The honest workflow is the default: ``fit`` splits the table (``--test-size 0.3``, stratified on a categorical
target, ``--seed``), trains on the train part only and writes both parts next to the model — ``model/train.csv``
and ``model/test.csv`` (``.parquet`` when the input was parquet) plus ``model/split.json`` saying how they were
made — so ``evaluate`` scores the synthetic table on rows the model never saw. ``evaluate`` takes the train and
test tables explicitly and warns when the test table holds rows of the training table.

Files: ``.csv``, ``.tsv``, ``.parquet`` (needs pyarrow: ``pip install "polydiff-tabular[parquet]"``), ``.json``
(an array of row objects) and ``.jsonl`` (one row object per line); ``-`` is CSV on stdin / stdout. Any other
extension is refused before any work. Messages go to stderr, data to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["register", "read_frame", "write_frame", "FORMATS"]

# extension -> format name
FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".json": "json",
           ".jsonl": "jsonl"}
_KNOWN = ".csv, .tsv, .parquet, .json or .jsonl"
_PARQUET_EXTRA = "polydiff-tabular[parquet]"


def _round_trip() -> dict:
    """read_csv options under which a float written by to_csv reads back as the same float: pandas 2's default
    parser may differ in the last digit; pandas 3 round-trips by default (and deprecates the option)."""
    import pandas as pd

    return {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def _warn(message: str) -> None:
    from polydiff.core.cli import warn

    warn(message)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- files


def _format(path: str, what: str, verb: str) -> str:
    if path == "-":
        return "csv"
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        kind = f"{suffix!r}" if suffix else "extension-less"
        raise ValueError(f"{what}: cannot {verb} {kind} files ({path!r}); use {_KNOWN}, or - for CSV on "
                         f"{'stdin' if verb == 'read' else 'stdout'}")
    name = FORMATS[suffix]
    if name == "parquet":
        from polydiff.core.optional import require

        require("pyarrow", _PARQUET_EXTRA, f"{verb}ing parquet files", install="pyarrow")
    return name


def read_frame(path: str, what: str = "data"):
    """A DataFrame from ``path`` by its extension (module docstring); ValueError naming ``what`` otherwise."""
    import pandas as pd

    name = _format(path, what, "read")
    if path != "-":
        file = Path(path)
        if not file.exists():
            raise ValueError(f"{what}: no such file {path!r}")
        if file.is_dir():
            raise ValueError(f"{what}: {path!r} is a folder; expected a {_KNOWN} file")
    source = sys.stdin if path == "-" else path
    round_trip = _round_trip()
    try:
        if name in ("csv", "tsv"):
            frame = pd.read_csv(source, sep="\t" if name == "tsv" else ",", **round_trip)
        elif name == "parquet":
            frame = pd.read_parquet(source)
        else:
            frame = pd.read_json(source, orient="records", lines=name == "jsonl", convert_dates=False)
    except (ValueError, pd.errors.ParserError) as error:  # includes EmptyDataError and bad encodings
        detail = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"{what}: could not read {path!r} as {name}: {detail}") from error
    if frame.shape[1] == 0 or len(frame) == 0:
        raise ValueError(f"{what}: {path!r} has no {'columns' if frame.shape[1] == 0 else 'rows'}")
    return frame


def _check_out(path: str, what: str = "--out", force: bool = True) -> str:
    """The output format of ``path`` before any work is done, refusing unknown extensions, folders and — unless
    ``force`` — a file (or link) that is already there."""
    name = _format(path, what, "write")
    if path != "-" and Path(path).is_dir():
        raise ValueError(f"{what}: {path!r} is a folder; give a file name such as {str(Path(path) / 'synth.csv')!r}")
    if path != "-" and not force and os.path.lexists(path):
        raise ValueError(f"{what}: {path!r} exists; pass --force to replace it, or choose another file")
    return name


def write_frame(frame, path: str, what: str = "--out", force: bool = True) -> None:
    """Write ``frame`` in the format its extension names (``-``: CSV on stdout), through a temporary file in the
    same folder renamed into place: a reader never sees half a file, and a failed write leaves an existing file as
    it was. ``force=False`` refuses a file that is already there (:func:`_check_out`)."""
    name = _check_out(path, what, force)
    if path == "-":
        sys.stdout.write(frame.to_csv(index=False))
        sys.stdout.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # named, not mkstemp: mkstemp's file is private (0600), and the rename would keep that mode
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        if name in ("csv", "tsv"):
            frame.to_csv(tmp, index=False, sep="\t" if name == "tsv" else ",")
        elif name == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_json(tmp, orient="records", lines=name == "jsonl", date_format="iso", force_ascii=False)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _columns(text: str | None, frame, option: str, source: str) -> list[str] | None:
    if text is None:
        return None
    names = [c.strip() for c in text.split(",") if c.strip()]
    for name in names:
        _check_column(name, frame, option, source)
    return names


def _check_column(name: str, frame, option: str, source: str) -> None:
    if name not in frame.columns:
        shown = ", ".join(map(str, list(frame.columns)[:20])) + (", ..." if frame.shape[1] > 20 else "")
        raise ValueError(f"{option}: {name!r} is not a column of {source}; columns: {shown}")


# ------------------------------------------------------------------------------------------------- fit


def _split(frame, target: str | None, test_size: float, seed: int):
    """(train, test, stratified): a seeded split, stratified on a categorical target when every class can be."""
    from sklearn.model_selection import train_test_split

    from .data import task_type

    if test_size == 0:
        return frame.reset_index(drop=True), frame.iloc[:0].copy(), False
    stratify = None
    if target is not None and task_type(frame[target]) != "regression":
        counts = frame[target].value_counts(dropna=False)
        n_test = math.ceil(test_size * len(frame))
        if counts.min() >= 2 and len(counts) <= n_test and len(counts) <= len(frame) - n_test:
            stratify = frame[target].astype(str).where(frame[target].notna(), "<NA>")
        else:
            _warn(f"--target {target!r}: a class is too rare to stratify the split on; splitting at random")
    try:
        train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=stratify)
    except ValueError as error:
        raise ValueError(f"--test-size: cannot split {len(frame)} rows with test size {test_size:g}: {error}") from None
    return train.reset_index(drop=True), test.reset_index(drop=True), stratify is not None


def _test_size(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not (0 <= value < 1):
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def _check_model_folder(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {str(out)!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ValueError(f"--out: {str(out)!r} exists and is not empty; pass --force to replace it, or choose "
                             "another folder")
        here = Path.cwd().resolve()
        if out.resolve() == here or out.resolve() in here.parents:
            raise ValueError(f"--out: refusing to replace {str(out)!r}, which holds the current folder")


def _swap_in(tmp: Path, out: Path) -> None:
    """Move the finished folder ``tmp`` to ``out``, replacing what was there (only after it is complete)."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except OSError:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _fit(args: argparse.Namespace) -> int:
    from .model import TabDDPM

    out = Path(args.out)
    _check_model_folder(out, args.force)
    frame = read_frame(args.data, "data")
    source = repr(args.data)
    if args.target is not None:
        _check_column(args.target, frame, "--target", source)
    categorical = _columns(args.categorical, frame, "--categorical", source)
    discrete = _columns(args.discrete, frame, "--discrete", source)
    if args.test_size == 0:
        _warn("--test-size 0: training on every row; nothing is held out, so `polydiff tabular evaluate` has no "
              "honest test table for this model")
    train, test, stratified = _split(frame, args.target, args.test_size, args.seed)
    options = dict(steps=args.steps, batch_size=args.batch_size, seed=args.seed, nan=args.nan,
                   progress=not args.quiet)
    model = TabDDPM(**options, **({"device": args.device} if args.device else {}))
    model.fit(train, target=args.target, categorical=categorical, discrete=discrete)

    suffix = ".parquet" if args.data != "-" and FORMATS.get(Path(args.data).suffix.lower()) == "parquet" else ".csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        folder = staging / "model"
        model.save_pretrained(folder)
        write_frame(train, str(folder / f"train{suffix}"), "--out")
        write_frame(test, str(folder / f"test{suffix}"), "--out")
        split = {"source": args.data if args.data == "-" else str(Path(args.data).resolve()), "rows": len(frame),
                 "train": f"train{suffix}", "test": f"test{suffix}", "train_rows": len(train),
                 "test_rows": len(test), "test_size": args.test_size, "seed": args.seed, "stratified": stratified,
                 "target": args.target}
        (folder / "split.json").write_text(json.dumps(split, indent=1) + "\n")
        _swap_in(folder, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    steps = getattr(model, "history", {}).get("steps", args.steps)
    held = f"{len(test)} held out in {out / ('test' + suffix)}" if len(test) else "none held out"
    _say(f"saved TabDDPM to {out}: trained on {len(train)} rows ({held}), {frame.shape[1]} columns, "
         f"{steps} steps")
    _say(f"next: polydiff tabular sample {out} -n {len(train)} --out synth.csv; "
         f"polydiff tabular evaluate synth.csv --model {out}")
    return 0


# ---------------------------------------------------------------------------------------------- sample


def _conditions(text: str | None):
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--conditions: not valid JSON ({error.msg} at character {error.pos}); expected e.g. "
                         "'{\"y\": \"yes\"}'") from None
    if not isinstance(value, dict) or not value:
        raise ValueError(f"--conditions: expected a JSON object such as '{{\"y\": \"yes\"}}', got {text!r}")
    return value


def _load_model(path: str, device: str | None):
    import inspect

    from .model import TabDDPM

    folder = Path(path)
    if not folder.exists():
        raise ValueError(f"model: no such folder {path!r} (write one with polydiff tabular fit ... --out {path})")
    if not folder.is_dir():
        raise ValueError(f"model: {path!r} is a file; expected the folder polydiff tabular fit wrote")
    if device and "device" in inspect.signature(TabDDPM.from_pretrained).parameters:
        return TabDDPM.from_pretrained(folder, device=device)
    if device:
        raise ValueError("--device: this version of TabDDPM cannot choose a device")
    return TabDDPM.from_pretrained(folder)


def _sample(args: argparse.Namespace) -> int:
    import inspect

    _check_out(args.out, force=args.force)  # before the model loads: a refusal costs nothing
    conditions = _conditions(args.conditions)
    model = _load_model(args.model, args.device)
    steps = args.steps if args.steps is not None else model.config.sample_steps
    solver = args.solver if args.solver is not None else model.config.solver
    options = dict(conditions=conditions, seed=args.seed, steps=args.steps, solver=args.solver,
                   batch_size=args.batch_size)
    parameters = inspect.signature(model.sample).parameters
    bars = []
    if not args.quiet and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        # one labelled bar for the whole task (the sampler's own bars would show one unlabelled bar per batch);
        # opened at the first step, so that an input the model refuses leaves no bar behind
        from polydiff.core.progress import progress_bar
        from polydiff.core.sampling import list_solvers

        adaptive = "adaptive" in solver or solver == "paradigms"
        total = None if adaptive or solver not in list_solvers() else math.ceil(args.n / args.batch_size) * steps

        def step(info):
            if not bars:
                bars.append(progress_bar(total=total, desc=f"sampling {args.n:,} rows", unit="step", dynamic_ncols=True,
                                 leave=False, file=sys.stderr))
            bars[0].update(1)

        options.update(progress=False, callback=step)
    else:
        options.update(progress=not args.quiet)
    try:
        frame = model.sample(args.n, **options)
    finally:
        for bar in bars:
            bar.close()
    write_frame(frame, args.out, force=args.force)  # checked again: the file may have appeared meanwhile
    where = "stdout" if args.out == "-" else args.out
    _say(f"wrote {len(frame):,} rows to {where} (solver {solver}, {steps} steps, seed {args.seed})")
    return 0


# -------------------------------------------------------------------------------------------- evaluate

# what each metric means for a reader: (better, ideal); "target" metrics are best at their ideal value
_DIRECTIONS = {"ml_efficiency": ("higher", 1.0), "ml_auc": ("higher", 1.0), "fidelity_ks_tvd": ("lower", 0.0),
               "correlation_diff": ("lower", 0.0), "detection_auc": ("closer to 0.5", 0.5),
               "dcr_median": ("close to the real data's", None), "dcr_p5": ("close to the real data's", None),
               "closer_to_train_share": ("closer to 0.5", 0.5), "ml_efficiency_sd": ("(spread over seeds)", None)}


def _resolve_split(args: argparse.Namespace) -> tuple[str, str, str | None, dict | None]:
    """(train path, test path, target, split.json or None) from --model and/or --train/--test."""
    train, test, target, split = args.train, args.test, args.target, None
    if args.model:
        folder = Path(args.model)
        info = folder / "split.json"
        if not info.is_file():
            raise ValueError(f"--model: {args.model!r} has no split.json (a folder written by polydiff tabular fit "
                             "keeps its train and test tables); give --train and --test instead")
        split = json.loads(info.read_text())
        train = train or str(folder / split["train"])
        test = test or str(folder / split["test"])
        target = target if target is not None else split.get("target")
    if train is None or test is None:
        what = {"--train": "the real rows the model was trained on", "--test": "real rows the model never saw"}
        missing = [name for name, value in (("--train", train), ("--test", test)) if value is None]
        raise ValueError(f"evaluate: {' and '.join(missing)} required ({'; '.join(what[m] for m in missing)}); "
                         "polydiff tabular fit writes both into the model folder, and --model DIR uses them")
    return train, test, target, split


def _entries(result: dict) -> list[dict]:
    """Normalise what ``evaluate`` returns into rows {name, value, better, ideal, real, note}: a flat
    {metric: number} dict, or {metric: {"value", "better"/"direction", "ideal", "real"/"reference"}} entries."""
    rows = []
    for name, item in result.items():
        if isinstance(item, dict):
            value = item.get("value", item.get("synthetic"))
            better = item.get("better", item.get("direction"))
            ideal = item.get("ideal")
            real = item.get("real", item.get("reference"))
            note = item.get("note", "")
        else:
            value, better, ideal, real, note = item, None, None, None, ""
        default_better, default_ideal = _DIRECTIONS.get(name, (None, None))
        better = {"max": "higher", "min": "lower", None: default_better}.get(better, better)
        if isinstance(better, str) and better.startswith("target:"):
            better = f"closer to {better.split(':', 1)[1]}"
        rows.append({"name": name, "value": value, "better": better or "", "note": note,
                     "ideal": default_ideal if ideal is None else ideal, "real": real})
    return rows


def _number(value) -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, (int, float)):
        return "–" if isinstance(value, float) and not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def _print_table(result: dict) -> None:
    entries = _entries(result)
    numeric = [e for e in entries if isinstance(e["value"], (int, float)) or e["value"] is None]
    notes = [e for e in entries if e not in numeric]
    has_real = any(e["real"] is not None for e in numeric)
    header = ["metric", "synthetic", *(["real data"] if has_real else []), "better", "ideal"]
    table = [[e["name"], _number(e["value"]), *([_number(e["real"])] if has_real else []), e["better"],
              _number(e["ideal"]) if e["ideal"] is not None else ""] for e in numeric]
    widths = [max(len(str(row[i])) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    for e in notes:
        if e["value"] not in ("", None):
            print(f"{e['name']}: {e['value']}")
    for e in numeric:
        if e["note"]:
            print(f"{e['name']}: {e['note']}")


def _evaluate(args: argparse.Namespace) -> int:
    import inspect
    import warnings

    from .data import task_type
    from .evaluate import evaluate

    if len(args.files) > 2:
        raise ValueError(f"evaluate: expected SYNTHETIC (or the old form REAL SYNTHETIC), got {len(args.files)} files")
    if len(args.files) == 2:  # the old form `evaluate real.csv synth.csv`: real is the training table
        if args.train:
            raise ValueError("evaluate: give the training table once (--train, or the old form's first file)")
        if not args.test and not args.model:
            raise ValueError("evaluate: --test required: `evaluate REAL SYNTHETIC` alone would test on rows the "
                             "model trained on; write `evaluate SYNTHETIC --train REAL --test TEST` (or --model DIR "
                             "for the split polydiff tabular fit kept)")
        _warn("`evaluate REAL SYNTHETIC` is the old form; write `evaluate SYNTHETIC --train REAL --test TEST`")
        args.train = args.files[0]
    synthetic_path = args.files[-1]
    train_path, test_path, target, split = _resolve_split(args)
    train, test = read_frame(train_path, "--train"), read_frame(test_path, "--test")
    synthetic = read_frame(synthetic_path, "synthetic")
    if target is not None:
        for frame, what, path in ((train, "--train", train_path), (test, "--test", test_path),
                                  (synthetic, "synthetic", synthetic_path)):
            _check_column(target, frame, "--target", f"{what} {path!r}")
    missing = [c for c in train.columns if c not in test.columns]
    if missing:
        raise ValueError(f"--test: columns {missing} of the training table are missing from {test_path!r}")
    if split is not None and split.get("test_rows") == 0 and not args.test:
        raise ValueError(f"--model: {args.model!r} was fitted with --test-size 0 and holds no test rows; give "
                         "--test with real rows the model never saw")
    task = task_type(train[target]) if target is not None else None
    options = dict(seeds=tuple(range(args.seeds)), iterations=args.iterations)
    if args.no_reference and "reference" in inspect.signature(evaluate).parameters:
        options["reference"] = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(train, test, synthetic, target, task, **options)
    notes = list(getattr(result, "notes", []) or [])
    for warning in caught:  # evaluate's own warnings (test rows that repeat training rows, ...), as one line each
        text = " ".join(str(warning.message).split())
        if issubclass(warning.category, UserWarning) and text:
            _warn(text + ("" if "polydiff tabular fit" in text else " (polydiff tabular fit keeps a held-out "
                                                                      "test table: evaluate --model DIR)"))
    if args.json:
        document = dict(result)
        table = getattr(result, "table", None)
        if table is not None:
            document["table"] = table.to_dict(orient="records")
            document["notes"] = notes
        print(json.dumps(_jsonable(document), indent=1))
        return 0
    print(f"synthetic {synthetic_path!r} ({len(synthetic)} rows) against train {train_path!r} "
          f"({len(train)} rows) and test {test_path!r} ({len(test)} rows)"
          + (f", target {target!r} ({task})" if target is not None else ", no target (ML efficiency skipped)"))
    if getattr(result, "table", None) is not None:
        print(result)  # Evaluation: metric, synthetic, real data, which way is better, ideal; classifier; notes
    else:
        _print_table(result)
    return 0


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -------------------------------------------------------------------------------------------- register


def register(subparsers) -> None:
    """Add ``tabular`` with its fit / sample / evaluate subcommands to the polydiff command line."""
    from polydiff.core.cli import positive_int

    formatter = argparse.RawDescriptionHelpFormatter
    tabular = subparsers.add_parser(
        "tabular", help="TabDDPM for tables: fit, sample, evaluate", formatter_class=formatter,
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    sub = tabular.add_subparsers(dest="tabular_command", required=True, metavar="COMMAND")

    fit = sub.add_parser(
        "fit", help="fit TabDDPM on a table, keeping a held-out split", formatter_class=formatter,
        description="Fit TabDDPM on the train part of a table and save it, with the split it used:\n"
                    "OUT/config.json, OUT/model.safetensors, OUT/train.csv, OUT/test.csv, OUT/split.json.",
        epilog="example: polydiff tabular fit my.csv --target y --out model/")
    fit.add_argument("data", help=f"the table to learn ({_KNOWN}; - for CSV on stdin)")
    fit.add_argument("--out", required=True, metavar="DIR",
                     help="model folder to write (refused when it exists and is not empty, unless --force)")
    fit.add_argument("--target", default=None, metavar="COLUMN",
                     help="target column: conditions the model when categorical, stratifies the split, and is "
                          "what `evaluate` predicts (default: none)")
    fit.add_argument("--test-size", type=_test_size, default=0.3, metavar="FRACTION",
                     help="share of rows held out of training, written to OUT/test.csv (default 0.3; 0 trains on "
                          "every row, with a warning)")
    fit.add_argument("--seed", type=int, default=0, help="seed of the split and of training (default 0)")
    fit.add_argument("--force", action="store_true", help="replace OUT when it exists and is not empty")
    fit.add_argument("--categorical", default=None, metavar="A,B",
                     help="comma-separated columns to treat as categorical (default: by dtype)")
    fit.add_argument("--discrete", default=None, metavar="A,B",
                     help="comma-separated integer-valued numeric columns (default: by dtype)")
    fit.add_argument("--nan", default="category", choices=("category", "impute"),
                     help="missing values: a category of their own, or imputed (default: category)")
    fit.add_argument("--steps", type=positive_int, default=None,
                     help="optimizer steps (default: 400 epochs clipped to [2000, 5000])")
    fit.add_argument("--batch-size", type=positive_int, default=512, help="training batch size (default 512)")
    fit.add_argument("--device", default=None, help="where to train: cpu (default), cuda, cuda:1, ...")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(func=_fit)

    sample = sub.add_parser(
        "sample", help="sample rows from a saved TabDDPM", formatter_class=formatter,
        description="Sample synthetic rows from a model folder written by `polydiff tabular fit`.",
        epilog="example: polydiff tabular sample model/ -n 10000 --out synth.csv --seed 1")
    sample.add_argument("model", help="the model folder `polydiff tabular fit` wrote")
    sample.add_argument("-n", type=positive_int, required=True, help="number of rows to sample")
    sample.add_argument("--out", required=True, metavar="FILE",
                        help=f"where to write the rows; the extension picks the format ({_KNOWN}); - writes CSV to "
                             "stdout. An existing file is refused unless --force")
    sample.add_argument("--force", action="store_true", help="replace OUT when it exists")
    sample.add_argument("--seed", type=int, default=0, help="sampling seed: the same seed gives the same rows "
                        "(default 0)")
    sample.add_argument("--solver", default=None,
                        help="sampler for the numerical columns, a name of polydiff.core.list_solvers() such as "
                             "ddpm, ddim, dpmpp_2m (default: the model's, ddpm)")
    sample.add_argument("--steps", type=positive_int, default=None,
                        help="sampling steps (default: the model's, 100)")
    sample.add_argument("--conditions", default=None, metavar="JSON",
                        help='class-conditional rows, e.g. \'{"y": "yes"}\' (a value, or a list of n values)')
    sample.add_argument("--batch-size", type=positive_int, default=8192,
                        help="rows sampled at once; lower it to save memory (default 8192)")
    sample.add_argument("--device", default=None, help="where to sample: cpu (default), cuda, ...")
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
    sample.set_defaults(func=_sample)

    evaluate = sub.add_parser(
        "evaluate", help="score a synthetic table against real train and test tables", formatter_class=formatter,
        description="Score a synthetic table: ML efficiency (train on synthetic, test on real held-out rows), "
                    "fidelity, detection and privacy (distance to the training rows). Give the real rows the model "
                    "trained on (--train) and real rows it never saw (--test), or --model DIR for the ones "
                    "`polydiff tabular fit` kept.",
        epilog="examples:\n  polydiff tabular evaluate synth.csv --model model/\n"
               "  polydiff tabular evaluate synth.csv --train model/train.csv --test model/test.csv --target y")
    evaluate.add_argument("files", nargs="+", metavar="SYNTHETIC",
                          help="the synthetic table (the old form REAL SYNTHETIC is read as --train REAL)")
    evaluate.add_argument("--train", default=None, metavar="FILE",
                          help="the real rows the model was trained on (fidelity and privacy reference)")
    evaluate.add_argument("--test", default=None, metavar="FILE",
                          help="real rows the model never saw (ML efficiency test set, privacy holdout)")
    evaluate.add_argument("--model", default=None, metavar="DIR",
                          help="a folder written by `polydiff tabular fit`: its train and test tables and target")
    evaluate.add_argument("--target", default=None, metavar="COLUMN",
                          help="target column for ML efficiency (default: the model's, with --model; else none)")
    evaluate.add_argument("--seeds", type=positive_int, default=3,
                          help="classifier seeds for ML efficiency, reported as mean and sd (default 3)")
    evaluate.add_argument("--iterations", type=positive_int, default=500,
                          help="boosting iterations of the ML-efficiency classifier (default 500)")
    evaluate.add_argument("--no-reference", action="store_true",
                          help="skip the real-data reference column (real rows scored the same way; about halves "
                               "the time)")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    evaluate.set_defaults(func=_evaluate)
