"""The one `polydiff` command line.

Packages extend it through two entry-point groups, so installing a domain package is all it takes:

* ``polydiff.bench``: ``name = "module:function"``, where ``function(out_dir, *, quick, seed, argv)`` writes
  ``out_dir/<name>.json``, ``out_dir/<name>.md`` and figures (see :mod:`polydiff.core.benchkit`) and returns the
  JSON document. ``polydiff bench <name> [--quick] --out DIR`` dispatches to it; ``polydiff bench all`` runs every
  one and ends with a summary. The module may define ``add_arguments(parser)`` (the options it takes after the
  package name); ``polydiff bench --list`` and ``polydiff bench <name> --help`` print them, and fall back to the
  module's docstring.
* ``polydiff.commands``: ``name = "module:register"``, where ``register(subparsers)`` adds the package's own
  subcommands (``polydiff tabular fit ...``). Each added parser sets ``func`` through ``set_defaults``; give
  every argument a ``help``.

Errors: :func:`main` turns every user error — a ``ValueError`` (``UsageError``, bad JSON, pandas' parse errors),
an ``OSError`` (missing file, a folder where a file was expected), an ``ImportError`` (a missing optional
dependency, see :mod:`polydiff.core.optional`) or a bad command line — into one line ``polydiff: error: ...`` on
stderr and exit status 2, for every package's subcommands. ``--debug`` (anywhere before ``--``, or
``POLYDIFF_DEBUG=1``) shows the traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from importlib.metadata import PackageNotFoundError, distributions, entry_points, version
from pathlib import Path

__all__ = ["main", "build_parser", "ArgumentParser", "UsageError", "positive_int", "polydiff_versions",
           "warn", "USER_ERRORS", "report_goals"]


class UsageError(ValueError):
    """A wrong command line (unknown option, missing argument, bad value): printed as one line, exit 2."""


# what main() reports in one line (exit 2) instead of a traceback; everything else is a bug
USER_ERRORS = (ValueError, OSError, ImportError)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but an error raises :class:`UsageError` (printed by :func:`main` as one line) instead of
    printing the usage and exiting. Subparsers inherit the class."""

    def error(self, message: str):
        where = "" if self.prog == "polydiff" else f"{self.prog}: "
        raise UsageError(f"{where}{message} (see '{self.prog} --help')")


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def warn(message: str) -> None:
    """One line ``polydiff: warning: ...`` on stderr."""
    print(f"polydiff: warning: {message}", file=sys.stderr, flush=True)


def polydiff_versions() -> dict[str, str]:
    """Name -> version of every installed polydiff distribution (``polydiff-core``, ``polydiff-tabular``, ...)."""
    found = {}
    for dist in distributions():
        name = (dist.metadata["Name"] or "").strip()
        canonical = name.lower().replace("_", "-").replace(".", "-")
        if (canonical == "polydiff" or canonical.startswith("polydiff-")) and canonical != "polydiff-workspace":
            found.setdefault(canonical, dist.version)
    return dict(sorted(found.items(), key=lambda item: (item[0] != "polydiff-core", item[0])))


class _Versions(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        lines = [f"{name} {number}" for name, number in polydiff_versions().items()]
        extra = []
        for name in ("torch",):
            try:
                extra.append(f"{name} {version(name)}")
            except PackageNotFoundError:
                pass
        extra.append(f"python {sys.version.split()[0]}")
        print("\n".join(lines + [", ".join(extra)]))
        parser.exit()


def _group(name: str) -> dict:
    return {ep.name: ep for ep in sorted(entry_points(group=name), key=lambda ep: ep.name)}


# ------------------------------------------------------------------------------------------------ bench


def _bench_module(ep):
    """The module behind a ``polydiff.bench`` entry point (``module:function``)."""
    return importlib.import_module(ep.value.split(":")[0].strip())


def _bench_options(name: str, ep) -> str:
    """The options a package's benchmark takes after its name: from its module's ``add_arguments(parser)``,
    else the module docstring, else a line saying it documents none."""
    try:
        module = _bench_module(ep)
    except Exception as error:  # a broken or half-installed package must not break --list for the others
        return f"(could not load {ep.value}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
    add = getattr(module, "add_arguments", None)
    if callable(add):
        parser = ArgumentParser(prog=f"polydiff bench {name} --out DIR --", add_help=False)
        add(parser)
        text = parser.format_help().strip()
        return text if parser._actions else "(no options of its own)"
    doc = (module.__doc__ or "").strip()
    return doc if doc else "(this benchmark documents no options)"


def _bench_description(ep) -> str:
    dist = getattr(ep, "dist", None)
    where = f"{dist.metadata['Name']} {dist.version}" if dist is not None else ep.value
    return where


def _list_benches(names: list[str] | None = None) -> int:
    benches = _group("polydiff.bench")
    if not benches:
        print("no benchmarks installed (install a polydiff package, e.g. pip install packages/core)")
        return 0
    for name, ep in benches.items():
        if names and name not in names:
            continue
        print(f"{name}  ({_bench_description(ep)})")
        print("    polydiff bench " + name + " [--quick] [--seed N] --out DIR [options below]")
        for line in _bench_options(name, ep).splitlines():
            print(f"    {line}" if line else "")
        print()
    print("Run every one with: polydiff bench all --quick --out bench-out")
    return 0


def _new_reports(out: Path, since: float) -> list[Path]:
    return sorted(p for p in out.glob("*.md") if p.stat().st_mtime >= since - 1.0)


def _row_count(document, out: Path, name: str) -> int | None:
    if isinstance(document, dict) and isinstance(document.get("rows"), list):
        return len(document["rows"])
    path = out / f"{name}.json"
    try:
        import json

        return len(json.loads(path.read_text())["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.strerror}: {str(error.filename)!r}"
        if error.filename2 is not None:
            text += f" -> {str(error.filename2)!r}"
    else:
        text = str(error)
        if isinstance(error, KeyError) and error.args:
            text = str(error.args[0])
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return text or type(error).__name__


def _run_bench(args: argparse.Namespace) -> int:
    benches = _group("polydiff.bench")
    if args.list:
        return _list_benches([args.package] if args.package and args.package != "all" else None)
    if args.help:
        if args.package and args.package in benches:
            return _list_benches([args.package])
        args.parser.print_help()
        return 0
    choices = ", ".join(["all", *benches])
    if not args.package:
        raise UsageError(f"polydiff bench: name a package ({choices}), or see them with 'polydiff bench --list'")
    if args.package == "all":
        names = list(benches)
    elif args.package in benches:
        names = [args.package]
    else:
        raise UsageError(f"polydiff bench: unknown package {args.package!r}; installed: {choices}")
    if not args.out:
        raise UsageError("polydiff bench: --out DIR is required (the folder for <package>.json, <package>.md and "
                         "figures)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {str(out)!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    for name in names:
        print(f"== polydiff bench {name} ({'quick' if args.quick else 'full'}) -> {out}", flush=True)
        started = time.time()
        tic = time.perf_counter()
        try:
            document = benches[name].load()(out, quick=args.quick, seed=args.seed, argv=list(args.extra))
        except Exception as error:  # keep going with the other packages, report at the end
            if len(names) == 1 or args.debug:
                raise
            if not isinstance(error, USER_ERRORS):  # a bug: its traceback helps whoever reads the log
                import traceback

                traceback.print_exc()
            print(f"polydiff bench {name} failed: {type(error).__name__}: {_one_line(error)}", file=sys.stderr,
                  flush=True)
            summary.append((name, None, time.perf_counter() - tic, f"FAILED ({type(error).__name__})", []))
            continue
        except SystemExit as stop:  # a package's option parser or a deliberate stop
            if len(names) == 1 or args.debug or not isinstance(stop.code, str):
                raise
            print(f"polydiff bench {name} failed: {stop.code}", file=sys.stderr, flush=True)
            summary.append((name, None, time.perf_counter() - tic, "FAILED", []))
            continue
        summary.append((name, _row_count(document, out, name), time.perf_counter() - tic, "ok",
                        _new_reports(out, started)))
    _print_summary(summary, out, args.quick)
    return 1 if any(result != "ok" for _, _, _, result, _ in summary) else 0


def _print_summary(summary: list, out: Path, quick: bool) -> None:
    width = max([7, *(len(name) for name, *_ in summary)])
    lines = ["", f"polydiff bench summary ({'quick' if quick else 'full'}):",
             f"  {'package':<{width}}  {'rows':>5}  {'wall':>8}  result"]
    for name, rows, seconds, result, _ in summary:
        lines.append(f"  {name:<{width}}  {'–' if rows is None else rows:>5}  {seconds:>6.0f} s  {result}")
    # a report written just before the next package started also falls in that package's time window
    reports = list(dict.fromkeys(str(path) for *_, paths in summary for path in paths))
    if reports:
        lines.append("reports: " + ", ".join(reports) + "  (JSON and figures beside them)")
    else:
        lines.append(f"reports: none written (folder {out})")
    listed = set()
    for *_, paths in summary:  # one goals table per package: each target, met or not, with its numbers
        for path in paths:
            if str(path) in listed:
                continue
            listed.add(str(path))
            lines += ["", f"goals of {path.stem} ({path}):", *_goal_table(path)]
    print("\n".join(lines), flush=True)


_VERDICTS = {True: "met", False: "NOT MET", None: "unchecked"}


def report_goals(path: Path) -> list[tuple[bool | None, str]]:
    """(met, text with its numbers) of each goal of a report: from its JSON twin's ``goals`` when present, else
    from the bullets of the markdown's "## Goals" section (verdict read from "met" / "not met" in the bullet)."""
    import json
    import re

    try:
        document = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        document = {}
    if isinstance(document, dict) and isinstance(document.get("goals"), list):
        return [(item.get("met"), " ".join(filter(None, [item.get("goal", ""), item.get("detail", "")])))
                for item in document["goals"] if isinstance(item, dict)]
    try:
        text = path.read_text()
    except OSError:
        return []
    goals, inside = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line[3:].lower().startswith("goals")
            continue
        if inside and re.match(r"\s*(- |\d+\. )", line):
            plain = re.sub(r"[*_`]", "", line.strip()).lstrip("- ").strip()
            plain = re.sub(r"^\d+\.\s*", "", plain)
            lowered = plain.lower()
            met = False if re.search(r"\bnot met\b", lowered) else True if re.search(r"\bmet\b", lowered) else None
            goals.append((met, plain))
    return goals


def _goal_table(path: Path) -> list[str]:
    goals = report_goals(path)
    if not goals:
        return ["  (no goals in this report)"]
    width = max(len(v) for v in _VERDICTS.values())
    lines = [f"  {'verdict':<{width}}  goal and numbers"]
    lines += [f"  {_VERDICTS.get(met, 'unchecked'):<{width}}  {text}" for met, text in goals]
    met = sum(1 for m, _ in goals if m is True)
    lines.append(f"  {met} of {len(goals)} met")
    return lines


# ------------------------------------------------------------------------------------------------ main


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="polydiff", description="polydiff: diffusion models across modalities",
                            epilog="Add --debug to any command to see the traceback of an error.")
    parser.add_argument("--version", action=_Versions, help="print the version of every installed polydiff "
                        "package (and torch, python) and exit")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line (also POLYDIFF_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    benches = _group("polydiff.bench")
    installed = ", ".join(benches) or "none"
    bench = sub.add_parser(
        "bench", help="run a package's benchmark against its peers", add_help=False,
        description="Run a package's benchmark side by side with its peers; writes <package>.json, "
                    "<package>.md and figures into --out and ends with a summary.",
        epilog=f"Installed benchmarks: {installed}. 'polydiff bench --list' prints each one's options; pass them "
               "after the package name, e.g. polydiff bench tabular --quick --out DIR -- --datasets penguins.",
        usage="polydiff bench [-h] [--list] [--quick] [--seed N] --out DIR PACKAGE [package options]")
    bench.add_argument("-h", "--help", action="store_true",
                       help="show this help; with a package name, that benchmark's own options")
    bench.add_argument("package", nargs="?", default=None,
                       help=f"an installed package ({installed}), or 'all' for every one")
    bench.add_argument("--list", action="store_true",
                       help="list the installed benchmarks and the options each one takes, then exit")
    bench.add_argument("--quick", action="store_true", help="small sizes, for `make bench` and smoke runs")
    bench.add_argument("--out", default=None, metavar="DIR",
                       help="output folder for <package>.json, <package>.md and figures (created if missing)")
    bench.add_argument("--seed", type=int, default=0, help="seed of every random choice in the run (default 0)")
    # Options the bench parser does not know (anywhere after `bench`) go to the package's benchmark as `extra`;
    # a REMAINDER positional would also swallow --quick/--out written after the package name.
    bench.set_defaults(extra=[], func=_run_bench, parser=bench)

    for name, ep in _group("polydiff.commands").items():
        try:
            register = ep.load()
        except Exception as error:  # one broken package must not take every other command down with it
            _broken_command(sub, name, ep, error)
            continue
        register(sub)
    return parser


def _broken_command(sub, name: str, ep, error: Exception) -> None:
    """A stand-in for a package whose commands failed to load: running it reports the load error."""
    reason = f"{type(error).__name__}: {_one_line(error)}"
    broken = sub.add_parser(name, help=f"(failed to load: {reason})", add_help=False, prefix_chars="\x00")
    broken.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def fail(args, error=error):
        raise ImportError(f"the {name!r} commands ({ep.value}) could not be loaded: {reason}") from error

    broken.set_defaults(func=fail)


def _pop_debug(argv: list[str]) -> tuple[bool, list[str]]:
    """``--debug`` anywhere before a ``--`` separator turns the traceback on."""
    cut = argv.index("--") if "--" in argv else len(argv)
    head = [a for a in argv[:cut] if a != "--debug"]
    debug = len(head) != cut or os.environ.get("POLYDIFF_DEBUG", "") not in ("", "0")
    return debug, head + argv[cut:]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 a benchmark failed, 2 a user error)."""
    debug, argv = _pop_debug(list(sys.argv[1:] if argv is None else argv))
    try:
        parser = build_parser()
        args, unknown = parser.parse_known_args(argv)
        args.debug = debug
        if unknown:
            if args.command != "bench":
                parser.error(f"unrecognized arguments: {' '.join(unknown)}")
            args.extra = [*args.extra, *unknown]
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `polydiff ... | head`: the reader left; stop quietly, as Unix tools do
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except USER_ERRORS as error:
        if debug:
            raise
        print(f"polydiff: error: {_one_line(error)}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print("polydiff: interrupted", file=sys.stderr, flush=True)
        return 130
    except SystemExit as stop:  # --help / --version, or a package's deliberate stop with a message
        if isinstance(stop.code, str):
            if debug:
                raise
            print(f"polydiff: error: {' '.join(stop.code.split())}", file=sys.stderr, flush=True)
            return 2
        return 0 if stop.code is None else int(stop.code)


if __name__ == "__main__":
    sys.exit(main())
