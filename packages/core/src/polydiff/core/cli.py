"""The one `polydiff` command line.

Packages extend it through two entry-point groups, so installing a domain package is all it takes:

* ``polydiff.bench``: ``name = "module:function"``, where ``function(out_dir, *, quick, seed, argv)`` writes
  ``out_dir/<name>.json``, ``out_dir/<name>.md`` and figures (see :mod:`polydiff.core.benchkit`).
  ``polydiff bench <name> [--quick] --out DIR`` dispatches to it; ``polydiff bench all`` runs every one.
* ``polydiff.commands``: ``name = "module:register"``, where ``register(subparsers)`` adds the package's own
  subcommands (``polydiff tabular fit ...``). Each added parser sets ``func`` through ``set_defaults``.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from pathlib import Path


def _group(name: str) -> dict:
    return {ep.name: ep for ep in sorted(entry_points(group=name), key=lambda ep: ep.name)}


def _run_bench(args: argparse.Namespace) -> int:
    benches = _group("polydiff.bench")
    if args.package == "all":
        names = list(benches)
    elif args.package in benches:
        names = [args.package]
    else:
        choices = ", ".join(["all", *benches])
        raise SystemExit(f"polydiff bench: unknown package {args.package!r}; installed choices: {choices}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in names:
        print(f"== polydiff bench {name} ({'quick' if args.quick else 'full'}) -> {out}", flush=True)
        try:
            benches[name].load()(out, quick=args.quick, seed=args.seed, argv=list(args.extra))
        except Exception as error:  # keep going with the other packages, report at the end
            if len(names) == 1:
                raise
            print(f"polydiff bench {name} failed: {error!r}", file=sys.stderr)
            failed.append(name)
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polydiff", description="polydiff: diffusion models across modalities")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="run a package's benchmark against its peers")
    bench.add_argument("package", help="package name, or 'all' for every installed package")
    bench.add_argument("--quick", action="store_true", help="small sizes, for `make bench` and smoke runs")
    bench.add_argument("--out", required=True, help="output folder for <package>.json, <package>.md, figures")
    bench.add_argument("--seed", type=int, default=0)
    # Options the bench parser does not know (anywhere after `bench`) go to the package's benchmark as `extra`;
    # a REMAINDER positional would also swallow --quick/--out written after the package name.
    bench.set_defaults(extra=[])
    bench.set_defaults(func=_run_bench)

    for ep in _group("polydiff.commands").values():
        ep.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if args.command != "bench":
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.extra = [*args.extra, *unknown]
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
