"""Few-step accuracy on a set of mixtures the solvers were not tuned on, and per-step overhead with warm caches.

``python -m polydiff.core.bench_fewstep --out results [--quick]`` writes ``core-fewstep.{md,json}``.

Problems: Gaussian mixtures (:func:`polydiff.core.bench.gmm.make_mixture`) in 16, 32 and 64 dimensions with 8, 12
or 16 components, isotropic and anisotropic, over seeds 0, 1, 2 (all 18 combinations; ``--quick``: the 6 of one
seed per dimension and kind, the seeds and component counts cycling, so every dimension, kind, seed and component
count still appears), each with the exact eps model on diffusers' default VP schedule (linear betas 1e-4..0.02,
1000 steps). Every method starts from the same fresh x_T (``--samples`` of them); the error is the mean L2
distance of the final samples to a float64 DOP853 solve of the probability-flow ODE from the same x_T to the
run's end time (t_min, or t = 0 for runs ending at sigma = 0).

Rows: every diffusers scheduler configuration of ``polydiff bench core`` (DDIM, DPM-Solver++ 2M/3M with their
spacings and final sigmas, UniPC bh1/bh2 orders 2/3, Euler), and polydiff's ``multistep_table`` fitted by
:func:`polydiff.core.solvers.learned.fit_multistep` on a separate calibration batch of x_T (its own DOP853
reference; never the evaluation batch) within the fitting time limit. The goal compares, per problem and NFE,
polydiff's fitted solver with diffusers' best configuration on that problem.

Overhead: microseconds per step of a whole sampling call (grid construction + the loop; diffusers:
``set_timesteps`` + the loop) with a zero-cost model (a preallocated output), float32, dimension 16, one thread,
repeated calls on the same grid (polydiff's set-up cache warm after the first call); the median of ``--repeats``
calls, with polydiff and diffusers calls interleaved so both see the same machine load.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

__all__ = ["problems", "run", "main"]

NFES = (5, 10, 20)
BETTER = {"error": "min", "ratio_to_diffusers_best": "min", "fit_seconds": "min", "us_per_step": "min",
          "ratio_to_ddim": "min"}


def problems(quick: bool) -> list[dict]:
    """The mixture set: dicts with dim, components, seed, anisotropic and a name."""
    out = []
    for index, (dim, anisotropic) in enumerate((d, a) for d in (16, 32, 64) for a in (False, True)):
        seeds = (index % 3,) if quick else (0, 1, 2)
        for seed in seeds:
            components = (8, 12, 16)[(index + seed) % 3]
            kind = "aniso" if anisotropic else "iso"
            out.append(dict(dim=dim, components=components, seed=seed, anisotropic=anisotropic,
                            name=f"gmm-d{dim}-k{components}-{kind}-s{seed}"))
    return out


def _log(message: str) -> None:
    print(f"[bench fewstep] {message}", file=sys.stderr, flush=True)


def _accuracy_rows(problem: dict, options, notes: list[str]) -> list[dict]:
    from .bench import peers
    from .bench.gmm import eps_model, make_mixture
    from .bench.reference import pf_ode_reference
    from .denoiser import Denoiser
    from .schedules import DiscreteSchedule
    from .solvers.learned import fit_multistep

    mixture = make_mixture(problem["dim"], problem["components"], problem["seed"],
                           anisotropic=problem["anisotropic"])
    schedule = DiscreteSchedule.linear()
    model = eps_model(mixture, schedule)
    denoiser = Denoiser(model, schedule)
    generator = torch.Generator().manual_seed(1000 + problem["seed"])
    x_calibration = torch.randn(options.calibration, problem["dim"], generator=generator, dtype=torch.float64)
    x_eval = torch.randn(options.samples, problem["dim"], generator=generator, dtype=torch.float64)
    ends = (schedule.t_min, 0.0)
    started = time.perf_counter()
    reference_calibration = pf_ode_reference(mixture, x_calibration, schedule, 1.0, ends, rtol=options.rtol,
                                             atol=options.rtol)
    reference = pf_ode_reference(mixture, x_eval, schedule, 1.0, ends, rtol=options.rtol, atol=options.rtol)
    _log(f"{problem['name']}: references in {time.perf_counter() - started:.1f} s")

    def error(samples, end):
        value = float((samples.double() - reference[end]).norm(dim=1).mean())
        return value if math.isfinite(value) else math.nan

    rows = []
    for nfe in NFES:
        task = f"{problem['name']}/nfe{nfe}"
        best = math.inf
        for config in peers.peer_configs(False):
            try:
                with torch.no_grad():
                    samples, calls = peers.run_peer(config.build(), model, x_eval.float(), nfe)
            except Exception as failure:  # a failing peer is a finding, reported
                notes.append(f"`{config.name}` on {task} failed: {type(failure).__name__}: {failure}")
                continue
            value = error(samples, 0.0 if config.end == "zero" else schedule.t_min)
            if calls > nfe or math.isnan(value):
                continue
            best = min(best, value)
            rows.append(dict(task=task, method=config.name, peer=True, error=value, nfe=calls))
        for final_zero in {"zero": (True,), "t_min": (False,), "both": (False, True)}[options.ends]:
            end = 0.0 if final_zero else schedule.t_min
            fit = fit_multistep(denoiser, nfe, x_calibration, reference_calibration[end], final_zero=final_zero,
                                time_limit=options.fit_seconds)
            with torch.no_grad():
                samples = fit.sample(denoiser, x_eval.float())
            value = error(samples, end)
            label = "polydiff multistep_table fitted" + (" final_zero" if final_zero else "")
            rows.append(dict(task=task, method=label, peer=False, error=value, nfe=nfe,
                             ratio_to_diffusers_best=value / best, fit_seconds=fit.seconds,
                             calibration_error_start=fit.initial_loss, calibration_error=fit.loss))
        _log(f"{task}: diffusers best {best:.4g}; fitted "
             + ", ".join(f"{r['error']:.4g}" for r in rows if r["task"] == task and not r["peer"]))
    return rows


def _overhead_rows(options) -> list[dict]:
    """Interleaved per-step timing: diffusers DDIM (trailing) and polydiff solvers on the same batch and NFE."""
    from .schedules import DiscreteSchedule

    schedule = DiscreteSchedule.linear()
    methods = {"polydiff ddim trailing": ("ddim", "trailing", {}),
               "polydiff dpmpp_2m logsnr": ("dpmpp_2m", "logsnr", {}),
               "polydiff unipc bh1 order3 logsnr": ("unipc", "logsnr", dict(variant="bh1", order=3)),
               "polydiff unipc bh2 logsnr": ("unipc", "logsnr", dict(variant="bh2"))}
    rows = []
    for nfe in NFES:
        for batch in (options.timing_batch, 1):
            per_step = _time_calls(schedule, methods, nfe, batch, options.repeats)
            ddim = per_step["diffusers DDIM trailing"]
            for label, value in per_step.items():
                rows.append(dict(task=f"overhead/nfe{nfe}/b{batch}", method=label, peer=label.startswith("diffusers"),
                                 us_per_step=value, ratio_to_ddim=value / ddim))
    return rows


def _time_calls(schedule, methods: dict, nfe: int, batch: int, repeats: int) -> dict[str, float]:
    """Median microseconds per step of each method's whole sampling call, calls interleaved."""
    from .bench import peers
    from .denoiser import Denoiser
    from .grids import make_grid
    from .sampling import get_solver

    generator = torch.Generator().manual_seed(0)
    start = torch.randn(batch, 16, generator=generator)
    output = 0.1 * torch.randn(batch, 16, generator=generator)
    zero_cost_model = lambda x, t: output  # noqa: E731
    scheduler = peers.PeerConfig("ddim", "DDIMScheduler", dict(clip_sample=False, timestep_spacing="trailing")).build()
    calls = {"diffusers DDIM trailing": lambda: peers.run_peer(scheduler, zero_cost_model, start, nfe)}
    denoiser = Denoiser(zero_cost_model, schedule)
    for label, (name, kind, solver_options) in methods.items():
        fn = get_solver(name)
        calls[label] = (lambda fn=fn, kind=kind, solver_options=solver_options:
                        fn(denoiser, start, make_grid(schedule, nfe, kind), **solver_options))
    times = {label: [] for label in calls}
    with torch.no_grad():
        for call in calls.values():  # warm-up: the first call fills polydiff's set-up cache
            call()
        for _ in range(repeats):
            for label, call in calls.items():
                begin = time.perf_counter()
                call()
                times[label].append(time.perf_counter() - begin)
    return {label: 1e6 * statistics.median(values) / nfe for label, values in times.items()}


def _goals(rows: list[dict], problem_names: list[str]) -> list[dict]:
    from .benchkit import goal

    goals = []
    for nfe in NFES:
        ratios = []
        for name in problem_names:
            fitted = [r["ratio_to_diffusers_best"] for r in rows
                      if r["task"] == f"{name}/nfe{nfe}" and not r["peer"] and "ratio_to_diffusers_best" in r]
            if fitted:
                ratios.append(min(fitted))
        if not ratios:
            continue
        worst = max(ratios)
        geometric = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        goals.append(goal(f"NFE {nfe}: polydiff's fitted multistep_table ≤ 0.8 × diffusers' best on every problem "
                          f"(worst ratio {worst:.3g}, geometric mean {geometric:.3g} over {len(ratios)} problems)",
                          bool(worst <= 0.8), source="polydiff issue #14, item 1"))
    fits = [r["fit_seconds"] for r in rows if "fit_seconds" in r]
    if fits:
        goals.append(goal(f"fitting ≤ 60 s each (longest {max(fits):.1f} s, median {statistics.median(fits):.1f} s; "
                          "one thread on a shared machine)", bool(max(fits) <= 60), source="polydiff issue #14, item 1"))
    overhead = [r for r in rows if r["task"].startswith("overhead/") and not r["peer"]
                and r["method"] in ("polydiff dpmpp_2m logsnr", "polydiff unipc bh1 order3 logsnr",
                                    "polydiff unipc bh2 logsnr")]
    if overhead:
        worst = max(overhead, key=lambda r: r["ratio_to_ddim"])
        goals.append(goal(f"per-step overhead ≤ diffusers DDIM (trailing) at NFE 5, 10, 20, batch 1 and the large "
                          f"batch, for DPM-Solver++(2M) and UniPC (worst ratio {worst['ratio_to_ddim']:.3g}: "
                          f"{worst['method']}, {worst['task']})", bool(worst["ratio_to_ddim"] <= 1.0),
                          source="polydiff issue #14, item 2"))
    return goals


def run(out_dir, *, quick: bool = False, argv: list[str] | None = None) -> dict:
    """Run the benchmark and write ``core-fewstep.{md,json}`` into ``out_dir``."""
    from . import __version__
    from .benchkit import write_report

    options = _parser().parse_args(argv or [])
    torch.set_num_threads(1)
    chosen = problems(quick or options.quick)
    notes: list[str] = []
    rows: list[dict] = []
    if not options.no_timing:
        rows += _overhead_rows(options)
        _log("overhead done")
    if not options.no_accuracy:
        for problem in chosen:
            rows += _accuracy_rows(problem, options, notes)
    versions = {"polydiff-core": __version__, "torch": torch.__version__}
    try:
        import diffusers

        versions["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    preamble = (__doc__ or "").split("\n", 2)[2] + "\n" + "\n".join(f"- {note}" for note in notes)
    return write_report(out_dir, "core-fewstep", quick=quick or options.quick, seed=0, versions=versions,
                        better=BETTER, rows=rows, title="polydiff bench core-fewstep: a mixture set and warm overhead",
                        preamble=preamble, goals=_goals(rows, [p["name"] for p in chosen]),
                        extra={"problems": chosen, "options": vars(options)})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m polydiff.core.bench_fewstep", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench-out", help="folder for core-fewstep.{md,json}")
    parser.add_argument("--quick", action="store_true", help="6 problems instead of 18")
    parser.add_argument("--samples", type=int, default=500, help="evaluation x_T per problem")
    parser.add_argument("--calibration", type=int, default=512, help="calibration x_T per problem (fitting)")
    parser.add_argument("--fit-seconds", type=float, default=50.0, help="time limit of each fit")
    parser.add_argument("--rtol", type=float, default=1e-9, help="DOP853 tolerance of the references")
    parser.add_argument("--repeats", type=int, default=21, help="timed calls per overhead entry")
    parser.add_argument("--timing-batch", type=int, default=2000, help="the large batch of the overhead rows")
    parser.add_argument("--ends", default="zero", choices=("zero", "t_min", "both"),
                        help="end time(s) of the fitted solver")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--no-accuracy", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> None:
    options = _parser().parse_args(argv)
    started = time.perf_counter()
    run(Path(options.out), quick=options.quick, argv=argv)
    _log(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
