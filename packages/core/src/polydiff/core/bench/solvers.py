"""Part ``solvers`` of ``polydiff bench core``: every polydiff solver and grid against diffusers' schedulers on one
exact model.

The data is a Gaussian mixture (:mod:`.gmm`), whose exact eps-prediction stands in for a perfectly trained
network on diffusers' default VP schedule (linear betas 1e-4..0.02, 1000 steps). Every method starts from the
same x_T (t = 1) and is scored by the mean L2 distance of its samples to a float64 DOP853 solve of the
probability-flow ODE from that x_T to the method's own end time (t_min = 1/1000, or t = 0 for runs whose last
sigma is zero) (:mod:`.reference`). Per-step overhead is timed with a zero-cost model on one thread
(``torch.set_num_threads(1)``, deliberately: it isolates the solver's own work from BLAS threading and from the
other processes on a shared machine).

    polydiff bench core --out DIR -- --parts solvers [--dim 16 --components 8 --anisotropic --batch 2000
                                                      --nfe 5 10 20 --solvers a,b --repeats 7 --fit-iterations 25]

Writes DIR/core-solvers.json, DIR/core-solvers.md and DIR/core-error-vs-nfe.png. The diffusers rows and the
figure need the ``polydiff-core[bench]`` extra (diffusers, matplotlib).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from ..benchkit import median_time, versions, write_report

__all__ = ["run", "rewrite_report", "BETTER", "PACKAGE", "TITLE"]

BETTER = {"error": "min", "us_per_step_b2000": "min", "us_per_step_b1": "min", "sw2": "min"}


PACKAGE = "core-solvers"

_QUICK_DEFAULTS = {"batch": (2000, 256), "calibration": (256, 128), "nfe": ([5, 10, 20], [5, 10]),
                   "repeats": (7, 3), "fit_iterations": (25, 15), "timing_batch": (2000, 2000)}


def resolve(options, quick: bool):
    """Fill this part's defaults (full or ``--quick``) into the options left unset; returns a copy."""
    resolved = argparse.Namespace(**vars(options))
    for name, (full, small) in _QUICK_DEFAULTS.items():
        if getattr(resolved, name, None) is None:
            setattr(resolved, name, small if quick else full)
    return resolved


def _log(message: str) -> None:
    print(f"[bench core solvers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(out: Path, options, *, quick: bool, seed: int) -> dict:
    """Run this part with the parsed ``polydiff bench core`` options; writes core-solvers.{md,json}."""
    return _run_solvers(out, quick, seed, resolve(options, quick))


def _run_solvers(out: Path, quick: bool, seed: int, options) -> dict:
    from ..denoiser import Denoiser
    from ..sampling import list_solvers
    from ..schedules import DiscreteSchedule
    from . import methods, peers, report
    from .gmm import eps_model, make_mixture
    from .reference import pf_ode_reference

    schedule = DiscreteSchedule.linear()
    mixture = make_mixture(options.dim, options.components, seed, options.anisotropic)
    model = eps_model(mixture, schedule)
    evaluated = [0]
    denoiser = Denoiser(methods.counting_model(model, evaluated), schedule)
    task_prefix = f"gmm-d{options.dim}-k{options.components}{'-aniso' if options.anisotropic else ''}"
    t_min = schedule.t_min
    ends = {"t_min": t_min, "zero": 0.0}

    def noise(n: int, offset: int) -> torch.Tensor:
        return torch.randn(n, options.dim, generator=torch.Generator().manual_seed(seed + offset), dtype=torch.float64)

    x_start, calibration = noise(options.batch, 1000), noise(options.calibration, 2000)
    tic = time.perf_counter()
    solved = pf_ode_reference(mixture, x_start, schedule, 1.0, (t_min, 0.0), rtol=1e-10, atol=1e-10)
    solved_cal = pf_ode_reference(mixture, calibration, schedule, 1.0, (t_min, 0.0), rtol=1e-10, atol=1e-10)
    reference_seconds = time.perf_counter() - tic
    references = {name: solved[t] for name, t in ends.items()}
    alpha_min, sigma_min = (float(v) for v in schedule.alpha_sigma(torch.tensor(t_min, dtype=torch.float64)))
    generator = torch.Generator().manual_seed(seed + 3000)
    exact = {"t_min": mixture.sample(options.batch, generator, alpha_min, sigma_min),
             "zero": mixture.sample(options.batch, generator)}
    problem = methods.Problem(denoiser, x_start, references, exact, calibration,
                              {name: solved_cal[t] for name, t in ends.items()}, evaluated, seed=seed)
    floor = {end: methods.score(references[end], problem, end, True)[1] for end in ends}
    _log(f"reference: {options.batch} + {options.calibration} samples in {reference_seconds:.1f} s; "
         f"sw2 floor {floor}")

    rows: list[dict] = []
    notes: list[str] = []
    wanted = {s for s in options.solvers.split(",") if s}
    solvers = {k: v for k, v in list_solvers().items() if not wanted or k in wanted}
    for name, fn in solvers.items():
        if name in methods.NOT_SAMPLERS or "inversion" in name:
            notes.append(f"`{name}` is not a noise-to-data sampler; not benchmarked.")
            continue
        for label, solver_options in methods.solver_variants(name, fn):
            try:
                rows += _solver_rows(name, label, fn, solver_options, problem, options, quick, task_prefix, ends,
                                     notes)
            except Exception as error:  # one broken solver must not sink the benchmark
                notes.append(f"`{name}{' ' + label if label else ''}` skipped: {type(error).__name__}: {error}")
                _log(notes[-1])
    if not options.no_peers:
        rows += _peer_rows(peers, methods, problem, model, options, quick, task_prefix, ends, notes)

    for note in notes:
        _log(note)
    breakdown = {} if options.no_peers else _overhead_breakdown(schedule, options)
    figure = "core-error-vs-nfe.png"
    report.plot_error_vs_nfe(rows, out / figure, f"{task_prefix}: error vs NFE")
    facts = {"sw2_floor": floor, "notes": notes, "overhead_breakdown": breakdown, "options": vars(options),
             "reference_seconds": reference_seconds, "sw_projections": problem.sw_projections}
    text, checks = _report_text(rows, seed, facts)
    return write_report(out, PACKAGE, quick=quick, seed=seed,
                        versions=versions(["torch", "numpy", "scipy", "diffusers", "polydiff-core"]), better=BETTER,
                        rows=rows, title=TITLE, preamble=text, figures=[figure],
                        extra={"targets": {str(k): v for k, v in checks.items()}, **facts})


TITLE = "polydiff bench core: solvers and grids vs diffusers"


def _report_text(rows: list[dict], seed: int, facts: dict) -> tuple[str, dict]:
    """The markdown preamble (problem, goals, notes) and the goal checks, from the rows and the run's facts
    (the JSON keys sw2_floor, notes, overhead_breakdown, options, reference_seconds, sw_projections)."""
    from types import SimpleNamespace

    from . import report

    options = SimpleNamespace(**facts["options"])
    floor, breakdown = facts["sw2_floor"], facts.get("overhead_breakdown") or {}
    problem_text = (
        f"Data: a {options.components}-component {'anisotropic' if options.anisotropic else 'isotropic'} Gaussian "
        f"mixture in {options.dim} dimensions (seed {seed}); exact eps model on diffusers' default VP schedule "
        f"(linear betas 1e-4..0.02, 1000 steps). {options.batch} samples from one shared x_T (t = 1), float32 "
        f"solvers. `error`: mean L2 distance of the final samples to a float64 DOP853 solve of the probability-flow "
        f"ODE (rtol = atol = 1e-10) from the same x_T to the run's own end time (t_min = 1/1000, or t = 0 for "
        f"`final_zero` / final sigma zero runs). `sw2`: sliced 2-Wasserstein distance "
        f"({facts.get('sw_projections', 256)} "
        f"projections) to {options.batch} independent exact samples of the marginal at that end time — the metric "
        f"for stochastic solvers, whose `error` is left empty (a stochastic sample has no per-sample reference). "
        f"`us_per_step_*`: median of {options.repeats} runs (after a warm-up) of grid construction + the sampling "
        f"loop with a zero-cost model (a preallocated output) in float32, divided by the steps (diffusers: "
        f"`set_timesteps` + the step loop), with `torch.set_num_threads(1)`. Fitted grids (`fit_grid`, global-error "
        f"objective, L-BFGS on log-SNR increments) are fitted on a separate batch of {options.calibration} x_T "
        f"against its own DOP853 reference, never on the evaluation batch. `nfe` is the model-call count actually "
        f"used (batched calls); `model_evals` counts model evaluations per sample, which exceeds `nfe` for "
        f"ParaDiGMS (a window of times per call); rows whose `model_evals` exceed the target are left out of the "
        f"goal checks.")
    reference_text = (f"Noise floor of `sw2` (the exact reference samples themselves): t_min {floor['t_min']:.4f}, "
                      f"t = 0 {floor['zero']:.4f}.")
    if facts.get("reference_seconds") is not None:
        reference_text += f" Reference solve: {facts['reference_seconds']:.1f} s."
    if breakdown:
        reference_text += "\n\n" + _breakdown_text(breakdown)
    default_problem = (options.dim, options.components, options.anisotropic, seed) == (16, 8, False, 0)
    return report.preamble(rows, problem_text=problem_text, notes=list(facts.get("notes") or []),
                           reference_text=reference_text, default_problem=default_problem)


def rewrite_report(out: Path, document: dict, name: str) -> None:
    """Rewrite ``out/<name>.md`` from its JSON ``document`` (this part's shape) without running anything."""
    from ..benchkit import render_markdown

    facts = dict(document)
    old = out / f"{name}.md"
    if facts.get("reference_seconds") is None and old.is_file():  # reports written before it was in the JSON
        import re

        found = re.search(r"Reference solve: ([0-9.]+) s\.", old.read_text())
        facts["reference_seconds"] = float(found.group(1)) if found else None
    text, _ = _report_text(document["rows"], document["seed"], facts)
    figure = "core-error-vs-nfe.png"
    figures = [figure] if (out / figure).exists() else []
    old.write_text(render_markdown(document, title=TITLE, preamble=text, figures=figures))


def _overhead_breakdown(schedule, options) -> dict:
    """Split the per-call time of polydiff DPM-Solver++(2M) (make_grid + solver) and diffusers' DDIM
    (set_timesteps + loop) into a fixed cost and a marginal cost per step, from runs with
    the zero-cost model: a least-squares line T(n) = fixed + n * marginal through 5, 10, 20, 40 and 80 steps.
    Microseconds."""
    from ..denoiser import Denoiser
    from ..grids import make_grid
    from ..sampling import list_solvers
    from . import peers

    fn = list_solvers().get("dpmpp_2m")
    scheduler = peers.PeerConfig("ddim", "DDIMScheduler", dict(clip_sample=False, timestep_spacing="trailing")).build()

    def diffusers_call(x, output):
        return lambda n: peers.run_peer(scheduler, lambda a, b: output, x, n)

    def polydiff_call(x, output):
        denoiser = Denoiser(lambda a, b: output, schedule)
        return lambda n: fn(denoiser, x, make_grid(schedule, n, "logsnr"))

    out = {}
    for batch in (options.timing_batch, 1):
        x = torch.randn(batch, options.dim, generator=torch.Generator().manual_seed(0))
        output = 0.1 * torch.randn(batch, options.dim, generator=torch.Generator().manual_seed(1))
        runs = {"diffusers DDIM trailing": diffusers_call(x, output)}
        if fn is not None:
            runs["polydiff dpmpp_2m logsnr"] = polydiff_call(x, output)
        counts = torch.tensor([5.0, 10.0, 20.0, 40.0, 80.0], dtype=torch.float64)
        for name, call in runs.items():
            with torch.no_grad():
                seconds = [1e6 * median_time(lambda n=n, call=call: call(n), max(options.repeats, 9))
                           for n in counts.int().tolist()]
            # least squares T(n) = fixed + n * marginal over five step counts: robust to one noisy point
            design = torch.stack([torch.ones_like(counts), counts], dim=1)
            fixed, marginal = torch.linalg.lstsq(design, torch.tensor(seconds, dtype=torch.float64)[:, None]
                                                 ).solution.flatten().tolist()
            out[f"{name} b{batch}"] = {"fixed_us": fixed, "per_step_us": marginal,
                                       "total_us": dict(zip(counts.int().tolist(), seconds, strict=True))}
    return out


def _breakdown_text(breakdown: dict) -> str:
    lines = ["Where the overhead goes (fixed cost per sampling call and marginal cost per step: a least-squares "
             "line through 5- to 80-step runs with the zero-cost model):", "",
             "| method, batch | fixed µs per call | marginal µs per step |", "|---|---|---|"]
    lines += [f"| {name} | {v['fixed_us']:.0f} | {v['per_step_us']:.1f} |" for name, v in breakdown.items()]
    return "\n".join(lines)


def _row(task, method, peer, **values) -> dict:
    return {"task": task, "method": method, "peer": peer, **values}


def _solver_rows(name, label, fn, solver_options, problem, options, quick, task_prefix, ends, notes) -> list[dict]:
    from . import methods

    stochastic = methods.is_stochastic(fn, problem, solver_options)
    adaptive = methods.is_adaptive(fn) is not None
    if adaptive:
        specs = [("adaptive", False), ("adaptive", True)]
    elif quick:
        specs = [("logsnr", False), ("karras", False), ("uniform", False)]
    else:
        specs = [("logsnr", False), ("karras", False), ("uniform", False), ("trailing", False),
                 ("logsnr", True), ("karras", True)]
    parallel = methods.evaluations_per_call(fn, problem, solver_options) > 1
    fit = not stochastic and not adaptive and not parallel and (not quick or name in ("dpmpp_2m", "unipc"))
    if parallel and not quick:
        notes.append(f"`{name}` evaluates the model on several times per call; no fitted grid (each fit would "
                     f"cost many times a sequential solver's).")
    if fit:
        specs += [("fitted", False)] + ([] if quick else [("fitted", True)])
    rows = []
    base = f"polydiff {name}{' ' + label if label else ''}"
    for target in options.nfe:
        for grid_kind, final_zero in specs:
            method = f"{base} {grid_kind}{' final_zero' if final_zero else ''}"
            try:
                row = _solver_row(fn, method, grid_kind, final_zero, target, name, label, solver_options,
                                  stochastic, adaptive, problem, options, task_prefix, notes)
            except Exception as error:  # one failing row must not sink the solver's other rows
                notes.append(f"`{method}` at NFE {target} failed: {type(error).__name__}: {error}")
                continue
            if row is not None:
                rows.append(row)
        _log(f"{base}: NFE {target} done")
    return rows


def _solver_row(fn, method, grid_kind, final_zero, target, name, label, solver_options, stochastic, adaptive,
                problem, options, task_prefix, notes) -> dict | None:
    from ..fitted_grid import fit_grid
    from ..grids import make_grid
    from . import methods

    schedule = problem.denoiser.schedule
    end = "zero" if final_zero else "t_min"
    probe_kind = "uniform" if adaptive else ("logsnr" if grid_kind == "fitted" else grid_kind)
    found = methods.steps_for_nfe(fn, problem, target, probe_kind, solver_options, final_zero)
    if found is None:
        notes.append(f"`{method}`: no setting reaches NFE ≤ {target}; row omitted.")
        return None
    steps, run_options = found
    tic = time.perf_counter()
    if grid_kind == "fitted":
        if steps < 2:
            notes.append(f"`{method}`: {steps} step at NFE {target} leaves no point to fit; row omitted.")
            return None
        grid = fit_grid(problem.denoiser, fn, steps, problem.calibration,
                        target=problem.calibration_references[end], final_zero=final_zero,
                        iterations=options.fit_iterations, solver_options=run_options)
    else:
        grid = make_grid(schedule, steps, probe_kind, final_zero=final_zero)
    fit_seconds = time.perf_counter() - tic if grid_kind == "fitted" else None
    error, sw2, nfe, evaluations = methods.evaluate(fn, problem, grid, run_options, end, stochastic)
    timing = {}
    for key, batch in (("us_per_step_b2000", options.timing_batch), ("us_per_step_b1", 1)):
        timing[key] = methods.per_step_overhead(fn, schedule, grid, steps, batch, options.dim, run_options,
                                                options.repeats, final_zero)
    extra = {}
    if adaptive:
        extra["tolerance"] = {k: v for k, v in run_options.items() if k not in solver_options}
    if fit_seconds is not None:
        extra["fit_seconds"] = round(fit_seconds, 2)
        extra["grid_times"] = [round(v, 6) for v in grid.tolist()]
    if isinstance(error, float) and math.isnan(error):
        notes.append(f"`{method}` at NFE {target}: non-finite samples.")
    return _row(f"{task_prefix}/nfe{target}", method, False, error=error, sw2=sw2, **timing, nfe=nfe,
                model_evals=evaluations, steps=steps, target_nfe=target, solver=name, variant=label,
                grid=grid_kind, final_zero=final_zero, end=end, stochastic=stochastic, **extra)


def _peer_rows(peers, methods, problem, model, options, quick, task_prefix, ends, notes) -> list[dict]:
    rows = []
    x = problem.x_start.to(problem.dtype)
    generator = torch.Generator().manual_seed(0)
    for config in peers.peer_configs(quick):
        for target in options.nfe:
            task = f"{task_prefix}/nfe{target}"
            try:
                with torch.no_grad():
                    samples, calls = peers.run_peer(config.build(), model, x, target)
                error, sw2 = methods.score(samples, problem, config.end, False)
                timing = {}
                for key, batch in (("us_per_step_b2000", options.timing_batch), ("us_per_step_b1", 1)):
                    output = 0.1 * torch.randn(batch, options.dim, generator=generator, dtype=problem.dtype)
                    start = torch.randn(batch, options.dim, generator=generator, dtype=problem.dtype)
                    scheduler = config.build()

                    def loop(scheduler=scheduler, output=output, start=start, steps=target):
                        with torch.no_grad():
                            peers.run_peer(scheduler, lambda x_in, t_in: output, start, steps)

                    timing[key] = 1e6 * median_time(loop, options.repeats) / target
            except Exception as error:  # report, do not hide: a failing peer is a finding
                notes.append(f"`{config.name}` at NFE {target} failed: {type(error).__name__}: {error}")
                continue
            if isinstance(error, float) and math.isnan(error):
                notes.append(f"`{config.name}` at NFE {target}: non-finite samples (diffusers' own output).")
            rows.append(_row(task, config.name, True, error=error, sw2=sw2, **timing, nfe=calls, model_evals=float(calls), steps=target,
                             target_nfe=target, family=config.family, grid=config.kwargs.get("timestep_spacing", ""),
                             end=config.end, final_zero=config.end == "zero", stochastic=False))
        _log(f"{config.name} done")
    return rows
