"""``polydiff tabular fit | sample | evaluate``: TabDDPM on CSV/parquet files from the command line.

    polydiff tabular fit data.csv --target y --out model/
    polydiff tabular sample model/ -n 10000 --out synth.csv
    polydiff tabular evaluate real.csv synth.csv [--target y] [--test test.csv]
"""

from __future__ import annotations

import argparse
import json

__all__ = ["register"]


def _columns(text: str | None) -> list[str] | None:
    return None if text is None else [c for c in text.split(",") if c]


def _fit(args: argparse.Namespace) -> int:
    from .data import read_table
    from .model import TabDDPM

    frame = read_table(args.data)
    model = TabDDPM(steps=args.steps, batch_size=args.batch_size, seed=args.seed, nan=args.nan,
                    progress=not args.quiet)
    model.fit(frame, target=args.target, categorical=_columns(args.categorical),
              discrete=_columns(args.discrete))
    model.save_pretrained(args.out)
    print(f"saved TabDDPM ({len(frame)} rows, {frame.shape[1]} columns, {args.steps} steps) to {args.out}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from .data import write_table
    from .model import TabDDPM

    model = TabDDPM.from_pretrained(args.model)
    conditions = json.loads(args.conditions) if args.conditions else None
    frame = model.sample(args.n, conditions=conditions, seed=args.seed, steps=args.steps, progress=not args.quiet)
    write_table(frame, args.out)
    print(f"wrote {len(frame)} rows to {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .data import TableTask, read_table, split, task_type
    from .evaluate import evaluate

    real, synthetic = read_table(args.real), read_table(args.synthetic)
    target = args.target
    if args.test:
        train, test = real, read_table(args.test)
    else:
        task = TableTask("real", real, target or real.columns[-1],
                         task_type(real[target or real.columns[-1]]))
        train, test = split(task, 0.3, args.seed)
    task = task_type(train[target]) if target else None
    metrics = evaluate(train, test, synthetic, target, task, seeds=tuple(range(args.seeds)),
                       iterations=args.iterations)
    print(json.dumps({k: (None if isinstance(v, float) and v != v else v) for k, v in metrics.items()}, indent=1))
    return 0


def register(subparsers) -> None:
    """Add ``tabular`` with its fit / sample / evaluate subcommands to the polydiff command line."""
    tabular = subparsers.add_parser("tabular", help="TabDDPM for tables: fit, sample, evaluate")
    sub = tabular.add_subparsers(dest="tabular_command", required=True)

    fit = sub.add_parser("fit", help="fit TabDDPM on a CSV/parquet file and save it")
    fit.add_argument("data")
    fit.add_argument("--target", default=None)
    fit.add_argument("--categorical", default=None, help="comma-separated column names (default: by dtype)")
    fit.add_argument("--discrete", default=None, help="comma-separated integer-valued numeric columns")
    fit.add_argument("--nan", default="category", choices=("category", "impute"))
    fit.add_argument("--steps", type=int, default=None,
                     help="optimizer steps (default: 400 epochs clipped to [2000, 5000])")
    fit.add_argument("--batch-size", type=int, default=512)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", required=True)
    fit.add_argument("--quiet", action="store_true")
    fit.set_defaults(func=_fit)

    sample = sub.add_parser("sample", help="sample rows from a saved TabDDPM")
    sample.add_argument("model")
    sample.add_argument("-n", type=int, required=True)
    sample.add_argument("--out", required=True)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    sample.add_argument("--conditions", default=None, help='JSON, e.g. \'{"y": "yes"}\'')
    sample.add_argument("--quiet", action="store_true")
    sample.set_defaults(func=_sample)

    evaluate = sub.add_parser("evaluate", help="score a synthetic table against the real one")
    evaluate.add_argument("real")
    evaluate.add_argument("synthetic")
    evaluate.add_argument("--target", default=None, help="target column for ML efficiency")
    evaluate.add_argument("--test", default=None, help="real held-out rows (default: a 30%% split of real)")
    evaluate.add_argument("--seeds", type=int, default=3)
    evaluate.add_argument("--iterations", type=int, default=500)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.set_defaults(func=_evaluate)
