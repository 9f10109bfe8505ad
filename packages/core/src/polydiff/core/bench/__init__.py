"""``polydiff bench core``: the core benchmark room, in four parts.

* ``mixtures`` (the default; :mod:`.fewstep`): few-step accuracy of the fitted multistep solver against diffusers'
  best scheduler on each of 18 Gaussian mixtures (6 with ``--quick``) at NFE 5, 10 and 20, with per-problem ratios
  and their geometric mean, and the per-step overhead at batch 1 and 2000: ``core.{md,json}``.
* ``solvers`` (:mod:`.solvers`): every polydiff solver and grid against every diffusers configuration on one
  mixture: ``core-solvers.{md,json}`` and ``core-error-vs-nfe.png``.
* ``train`` (:mod:`.train`): the Trainer against a plain training loop: ``core-train.{md,json}``.
* ``inverse`` (:mod:`.inverse`): inverse-problem solvers against the exact posterior: ``core-inverse.{md,json}``.

    polydiff bench core [--quick] --out DIR [-- --parts mixtures,solvers,train,inverse  <options of the parts>]

The shared pieces: :mod:`.gmm` (the mixtures and their exact scores), :mod:`.reference` (DOP853 solves of the
probability-flow ODE), :mod:`.peers` (diffusers' schedulers), :mod:`.methods` and :mod:`.report`. Every part
times on one thread (``torch.set_num_threads(1)``). ``--report-only`` rewrites the markdown of every core report
in the folder from its JSON. The diffusers rows and the figure need the ``polydiff-core[bench]`` extra.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import torch

from .solvers import BETTER as SOLVERS_BETTER

__all__ = ["run", "parse_options", "add_arguments", "rewrite_reports", "PARTS", "BETTER", "SOLVERS_BETTER"]

#: part -> (module, the report it writes)
PARTS = {"mixtures": ("fewstep", "core"), "solvers": ("solvers", "core-solvers"), "train": ("train", "core-train"),
         "inverse": ("inverse", "core-inverse")}


def __getattr__(name: str):
    if name == "BETTER":  # the default part's metrics
        from .fewstep import BETTER

        return BETTER
    raise AttributeError(name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``polydiff bench core`` (after the package name); ``polydiff bench --list`` prints them."""
    parser.add_argument("--parts", default="mixtures",
                        help="comma-separated parts to run: mixtures (core.*: few-step accuracy on the mixture set "
                             "and per-step overhead), solvers (core-solvers.*: every solver and grid on one "
                             "mixture), train (core-train.*), inverse (core-inverse.*); default mixtures")
    parser.add_argument("--train", action="store_true", help="also run the train part")
    parser.add_argument("--inverse", action="store_true", help="also run the inverse part")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rewrite the markdown of every core report in the output folder from "
                             "its JSON")
    shared = parser.add_argument_group("mixtures and solvers")
    shared.add_argument("--nfe", type=int, nargs="+", default=None,
                        help="NFE columns; default 5 10 20 (solvers --quick: 5 10)")
    shared.add_argument("--calibration", type=int, default=None,
                        help="x_T the fitted solvers and grids are fitted on (never the evaluation batch); default "
                             "mixtures 384 (192 with --quick), solvers 256 (128)")
    shared.add_argument("--repeats", type=int, default=None,
                        help="timing repeats (median); default mixtures 21 (5), solvers 7 (3)")
    shared.add_argument("--timing-batch", type=int, default=None, help="the large batch of the overhead rows "
                        "(default 2000)")
    shared.add_argument("--no-peers", action="store_true", help="skip the diffusers rows (no diffusers needed)")
    mixtures = parser.add_argument_group("mixtures")
    mixtures.add_argument("--problems", default="", help="comma-separated problem names (default: all 18, or the "
                          "quick 6), e.g. gmm-d64-k12-aniso-s2")
    mixtures.add_argument("--samples", type=int, default=None, help="evaluation x_T per problem; default 500 (128)")
    mixtures.add_argument("--validation", type=int, default=None,
                          help="validation x_T per problem, which chooses the point of each fit kept; default 192 "
                               "(64)")
    mixtures.add_argument("--fit-seconds", type=float, default=None,
                          help="CPU-time limit of each fit (seconds of the fitting thread); default 12 (3 with --quick)")
    mixtures.add_argument("--regularization", type=float, default=None,
                          help="weight of the pull of the fitted coefficients toward UniPC's (default 0)")
    mixtures.add_argument("--rtol", type=float, default=None, help="DOP853 tolerance of the references; default "
                          "1e-8 (1e-6)")
    mixtures.add_argument("--ends", default="zero", choices=("zero", "t_min", "both"),
                          help="end time(s) of the fitted solver")
    mixtures.add_argument("--no-timing", action="store_true", help="skip the overhead rows")
    mixtures.add_argument("--no-accuracy", action="store_true", help="skip the accuracy rows")
    solvers = parser.add_argument_group("solvers")
    solvers.add_argument("--dim", type=int, default=16, help="dimension of the Gaussian mixture")
    solvers.add_argument("--components", type=int, default=8, help="mixture components")
    solvers.add_argument("--anisotropic", action="store_true", help="full random covariances instead of isotropic")
    solvers.add_argument("--batch", type=int, default=None, help="samples per method (x_T); default 2000, 256 with "
                         "--quick")
    solvers.add_argument("--solvers", default="", help="comma-separated polydiff solvers (default: all)")
    solvers.add_argument("--fit-iterations", type=int, default=None,
                         help="L-BFGS iterations of each fitted grid; default 25, 15 with --quick")


def parse_options(argv: list[str] | None, quick: bool = False) -> argparse.Namespace:
    """The options after ``polydiff bench core``; ``parts`` becomes a list of known part names."""
    from ..benchkit import OptionParser

    parser = OptionParser(prog="polydiff bench core", description=__doc__.splitlines()[0])
    add_arguments(parser)
    options = parser.parse_args([a for a in (argv or []) if a != "--"])
    parts = [p.strip() for p in options.parts.split(",") if p.strip()]
    parts += [flag for flag in ("train", "inverse") if getattr(options, flag) and flag not in parts]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ValueError(f"--parts: expected some of {', '.join(PARTS)}, got {options.parts!r}")
    options.parts = parts
    for name in ("dim", "components", "batch", "calibration", "repeats", "timing_batch", "fit_iterations",
                 "samples", "validation"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected a positive integer, got {value}")
    if options.nfe is not None and any(n < 1 for n in options.nfe):
        raise ValueError(f"--nfe: expected positive integers, got {options.nfe}")
    return options


def _log(message: str) -> None:
    print(f"[bench core {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(out_dir, *, quick: bool = False, seed: int = 0, argv: list[str] | None = None) -> dict:
    """Run the chosen parts of the core benchmark into ``out_dir``; returns the JSON document of the first."""
    from ..optional import require

    options = parse_options(argv, quick)
    out = Path(out_dir)
    if options.report_only:
        return rewrite_reports(out)
    # the optional dependencies, checked before any work: a missing one fails in one line naming the extra
    if "solvers" in options.parts:
        require("matplotlib", "polydiff-core[bench]", "the figure of polydiff bench core's solvers part")
    if not options.no_peers and {"mixtures", "solvers"} & set(options.parts):
        require("diffusers", "polydiff-core[bench]", "the diffusers rows of polydiff bench core; or run it with "
                "--no-peers")
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    documents = []
    for part in options.parts:
        module, package = PARTS[part]
        _log(f"part {part} -> {out / (package + '.md')}")
        loaded = importlib.import_module(f"{__name__}.{module}")
        if part in ("mixtures", "solvers"):
            documents.append(loaded.run(out, options, quick=quick, seed=seed))
        else:
            documents.append(_run_extra(out, quick, seed, loaded, package))
    _log(f"done in {time.perf_counter() - started:.0f} s")
    return documents[0]


def _run_extra(out: Path, quick: bool, seed: int, loaded, package: str) -> dict:
    """The train / inverse parts: ``run_<part>_bench(out, quick, seed)`` rows, written as ``<package>.json/.md``
    with the module's ``BETTER`` and ``PREAMBLE`` (or its docstring)."""
    from ..benchkit import versions, write_report

    function = next(getattr(loaded, n) for n in dir(loaded) if n.startswith("run_") and n.endswith("_bench"))
    rows = list(function(out, quick, seed))
    title, preamble = _extra_text(loaded, package)
    return write_report(out, package, quick=quick, seed=seed, versions=versions(["torch", "polydiff-core"]),
                        better=loaded.BETTER, rows=rows, title=title, preamble=preamble)


def _extra_text(loaded, package: str) -> tuple[str, str]:
    preamble = getattr(loaded, "PREAMBLE", None) or (loaded.__doc__ or "")
    first_line = (loaded.__doc__ or package).strip().splitlines()[0]
    return f"polydiff core: {first_line.split(': ', 1)[-1].rstrip('.')}", preamble


def rewrite_reports(out: Path) -> dict:
    """Rewrite the markdown of every core report in ``out`` (core, core-solvers, core-train, core-inverse) from
    its JSON, without running anything: for a change of the reports' wording, not of their numbers. Returns the
    first document found."""
    from ..benchkit import render_markdown
    from . import fewstep, solvers

    found = []
    for _, package in PARTS.values():
        path = out / f"{package}.json"
        if not path.is_file():
            continue
        document = json.loads(path.read_text())
        if "problems" in document:
            (out / f"{package}.md").write_text(fewstep.render(document))
        elif "sw2_floor" in document:  # the solvers part's shape (also the core report of earlier versions)
            solvers.rewrite_report(out, document, package)
        else:
            module = PARTS["train" if package == "core-train" else "inverse"][0]
            title, preamble = _extra_text(importlib.import_module(f"{__name__}.{module}"), package)
            old = out / f"{package}.md"
            if old.is_file() and old.read_text().startswith("# "):  # keep the title its own writer gave it
                title = old.read_text().splitlines()[0][2:].strip()
            old.write_text(render_markdown(document, title=title, preamble=preamble))
        _log(f"rewrote {out / (package + '.md')} from {path}")
        found.append(document)
    if not found:
        raise ValueError(f"--report-only: no core report JSON in {str(out)!r} (run the benchmark into it first)")
    return found[0]
