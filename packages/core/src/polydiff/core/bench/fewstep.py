"""Part ``mixtures`` of ``polydiff bench core`` (its default): few-step accuracy on a set of mixtures the solvers
were not tuned on, against diffusers' best scheduler on each, and per-step overhead with warm caches.

    polydiff bench core [--quick] --out DIR [-- --problems NAME,... --samples 500 --calibration 512
                                               --validation 256 --fit-seconds 25 --nfe 5 10 20]

writes ``core.{md,json}``.

Problems: Gaussian mixtures (:func:`polydiff.core.bench.gmm.make_mixture`) in 16, 32 and 64 dimensions with 8, 12
or 16 components, isotropic and anisotropic, over seeds 0, 1, 2 (all 18 combinations; ``--quick``: the 6 of one
seed per dimension and kind, the seeds and component counts cycling, so every dimension, kind, seed and component
count still appears), each with the exact eps model on diffusers' default VP schedule (linear betas 1e-4..0.02,
1000 steps). Every method starts from the same fresh x_T (``--samples`` of them); the error is the mean L2
distance of the final samples to a float64 DOP853 solve of the probability-flow ODE from the same x_T to the
run's end time (t_min, or t = 0 for runs ending at sigma = 0).

Rows: every diffusers scheduler configuration of the ``solvers`` part (DDIM, DPM-Solver++ 2M/3M with their
spacings and final sigmas, UniPC bh1/bh2 orders 2/3, Euler), and polydiff's ``multistep_table`` fitted by
:func:`polydiff.core.solvers.learned.fit_multistep` within the fitting time limit on a calibration batch of x_T
(its own DOP853 reference), the point of the fit's path kept being the one with the lowest error on a second,
validation batch of x_T (early stopping; neither batch is the evaluation batch). The fit starts from UniPC (bh1
or bh2, order 3) on the best of four grids (log-SNR, quadratic, uniform, Karras) for that batch. Its time limit
counts the fitting thread's CPU seconds (``fit_seconds``): on a machine shared with other jobs the wall-clock
(``fit_wall_seconds``, reported beside it) measures the load, not the fit. The goal compares, per problem
and NFE, polydiff's fitted solver with diffusers' best configuration on that problem.

Overhead: microseconds per step of a whole sampling call (grid construction + the loop; diffusers:
``set_timesteps`` + the loop) with a zero-cost model (a preallocated output), float32, dimension 16, one thread,
repeated calls on the same grid (polydiff's set-up cache warm after the first call); the median of ``--repeats``
calls of the calling thread's CPU time (wall-clock on a shared machine mostly measures the other jobs), with
polydiff and diffusers calls interleaved so both see the same machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import torch

__all__ = ["problems", "run", "resolve", "goals", "render", "PACKAGE", "TITLE", "BETTER"]

PACKAGE = "core"
TITLE = "polydiff bench core: few-step solvers on a mixture set vs diffusers"
NFES = (5, 10, 20)
BETTER = {"error": "min", "ratio_to_diffusers_best": "min", "fit_seconds": "min", "fit_wall_seconds": None,
          "us_per_step": "min", "ratio_to_ddim": "min"}
#: the UniPC (variant, order) pairs each fit tries on every starting grid before it corrects the best one
START_SOLVERS = (("bh1", 3), ("bh2", 3))
#: option -> (full run, --quick) defaults of this part
_DEFAULTS = {"samples": (500, 128), "calibration": (384, 192), "validation": (192, 64),
             "fit_seconds": (12.0, 3.0), "rtol": (1e-8, 1e-6), "repeats": (21, 5), "timing_batch": (2000, 2000),
             "nfe": (list(NFES), list(NFES)), "regularization": (0.0, 0.0)}


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


def resolve(options, quick: bool) -> argparse.Namespace:
    """This part's options with its defaults (full or ``--quick``) filled in where unset; checks them."""
    resolved = argparse.Namespace(**vars(options))
    for name, (full, small) in _DEFAULTS.items():
        if getattr(resolved, name, None) is None:
            setattr(resolved, name, small if quick else full)
    for name in ("samples", "calibration", "validation", "repeats", "timing_batch"):
        if getattr(resolved, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(resolved, name)}")
    if not resolved.fit_seconds > 0:
        raise ValueError(f"--fit-seconds: expected seconds > 0, got {resolved.fit_seconds}")
    if resolved.regularization < 0:
        raise ValueError(f"--regularization: expected a number >= 0, got {resolved.regularization}")
    return resolved


def _chosen(options, quick: bool) -> list[dict]:
    wanted = [name for name in (getattr(options, "problems", "") or "").split(",") if name]
    if not wanted:
        return problems(quick)
    known = {p["name"]: p for p in problems(False)}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(f"--problems: unknown {', '.join(unknown)}; the set is {', '.join(known)}")
    return [known[name] for name in wanted]


def _log(message: str) -> None:
    print(f"[bench core {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _accuracy_rows(problem: dict, options, notes: list[str]) -> list[dict]:
    from ..denoiser import Denoiser
    from ..schedules import DiscreteSchedule
    from ..solvers.learned import fit_multistep
    from . import peers
    from .gmm import eps_model, make_mixture
    from .reference import pf_ode_reference

    mixture = make_mixture(problem["dim"], problem["components"], problem["seed"],
                           anisotropic=problem["anisotropic"])
    schedule = DiscreteSchedule.linear()
    model = eps_model(mixture, schedule)
    denoiser = Denoiser(model, schedule)
    def noise(count: int, offset: int) -> torch.Tensor:  # three independent batches of x_T
        generator = torch.Generator().manual_seed(offset + problem["seed"])
        return torch.randn(count, problem["dim"], generator=generator, dtype=torch.float64)

    x_calibration, x_validation = noise(options.calibration, 1000), noise(options.validation, 2000)
    x_eval = noise(options.samples, 3000)
    ends = (schedule.t_min, 0.0)
    started = time.perf_counter()
    reference_calibration = pf_ode_reference(mixture, x_calibration, schedule, 1.0, ends, rtol=options.rtol,
                                             atol=options.rtol)
    reference_validation = pf_ode_reference(mixture, x_validation, schedule, 1.0, ends, rtol=options.rtol,
                                            atol=options.rtol)
    reference = pf_ode_reference(mixture, x_eval, schedule, 1.0, ends, rtol=options.rtol, atol=options.rtol)
    _log(f"{problem['name']}: references in {time.perf_counter() - started:.1f} s")

    def error(samples, end):
        value = float((samples.double() - reference[end]).norm(dim=1).mean())
        return value if math.isfinite(value) else math.nan

    rows = []
    for nfe in options.nfe:
        task = f"{problem['name']}/nfe{nfe}"
        best = math.inf
        for config in [] if options.no_peers else peers.peer_configs(False):
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
            wall = time.perf_counter()
            fit = fit_multistep(denoiser, nfe, x_calibration, reference_calibration[end], final_zero=final_zero,
                                time_limit=options.fit_seconds, regularization=options.regularization,
                                validation=(x_validation, reference_validation[end]), start_solvers=START_SOLVERS,
                                clock="cpu")
            wall = time.perf_counter() - wall
            with torch.no_grad():
                samples = fit.sample(denoiser, x_eval.float())
            value = error(samples, end)
            label = "polydiff multistep_table fitted" + (" final_zero" if final_zero else "")
            rows.append(dict(task=task, method=label, peer=False, error=value, nfe=nfe,
                             ratio_to_diffusers_best=value / best if math.isfinite(best) else None,
                             fit_seconds=fit.seconds, fit_wall_seconds=wall, calibration_error_start=fit.initial_loss,
                             calibration_error=fit.loss, validation_error=fit.validation_loss))
        _log(f"{task}: diffusers best {best:.4g}; fitted "
             + ", ".join(f"{r['error']:.4g}" for r in rows if r["task"] == task and not r["peer"]))
    return rows


def _overhead_rows(options) -> list[dict]:
    """Interleaved per-step timing: diffusers DDIM (trailing) and polydiff solvers on the same batch and NFE."""
    from ..schedules import DiscreteSchedule

    schedule = DiscreteSchedule.linear()
    methods = {"polydiff ddim trailing": ("ddim", "trailing", {}),
               "polydiff dpmpp_2m logsnr": ("dpmpp_2m", "logsnr", {}),
               "polydiff unipc bh1 order3 logsnr": ("unipc", "logsnr", dict(variant="bh1", order=3)),
               "polydiff unipc bh2 logsnr": ("unipc", "logsnr", dict(variant="bh2"))}
    rows = []
    for nfe in options.nfe:
        for batch in (options.timing_batch, 1):
            per_step = _time_calls(schedule, methods, nfe, batch, options.repeats)
            ddim = per_step["diffusers DDIM trailing"]
            for label, value in per_step.items():
                rows.append(dict(task=f"overhead/nfe{nfe}/b{batch}", method=label, peer=label.startswith("diffusers"),
                                 us_per_step=value, ratio_to_ddim=value / ddim))
    return rows


def _time_calls(schedule, methods: dict, nfe: int, batch: int, repeats: int) -> dict[str, float]:
    """Median microseconds per step of each method's whole sampling call, calls interleaved; CPU time of this
    thread (time.thread_time), which on a machine shared with other jobs leaves out the time spent waiting for a
    core."""
    from ..denoiser import Denoiser
    from ..grids import make_grid
    from ..sampling import get_solver
    from . import peers

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
                begin = time.thread_time()
                call()
                times[label].append(time.thread_time() - begin)
    return {label: 1e6 * statistics.median(values) / nfe for label, values in times.items()}


def _ratios(rows: list[dict], names: list[str], nfe: int) -> dict[str, float]:
    """problem -> the fitted solver's error ratio to diffusers' best at this NFE (the best fitted row)."""
    out = {}
    for name in names:
        fitted = [r["ratio_to_diffusers_best"] for r in rows if r["task"] == f"{name}/nfe{nfe}" and not r["peer"]
                  and r.get("ratio_to_diffusers_best") is not None]
        if fitted:
            out[name] = min(fitted)
    return out


def _geometric_mean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def goals(rows: list[dict], problem_names: list[str], nfes=NFES) -> list[dict]:
    """The issue's targets, checked against the rows: per NFE the worst problem's ratio ≤ 0.8, fitting ≤ 60 s,
    per-step overhead ≤ diffusers DDIM's."""
    from ..benchkit import goal

    found = []
    for nfe in nfes:
        ratios = _ratios(rows, problem_names, nfe)
        if not ratios:
            continue
        worst = max(ratios, key=ratios.get)
        found.append(goal(f"NFE {nfe}: polydiff's fitted multistep_table ≤ 0.8 × diffusers' best on every problem "
                          f"(worst ratio {ratios[worst]:.3g} on {worst}, geometric mean "
                          f"{_geometric_mean(ratios.values()):.3g} over {len(ratios)} problems)",
                          bool(ratios[worst] <= 0.8), source="polydiff issue #14, item 1"))
    fits = [r["fit_seconds"] for r in rows if r.get("fit_seconds") is not None]
    walls = [r["fit_wall_seconds"] for r in rows if r.get("fit_wall_seconds") is not None]
    if fits:
        on_wall = (f"; wall-clock on the shared machine: longest {max(walls):.1f} s, median "
                   f"{statistics.median(walls):.1f} s" if walls else "")
        found.append(goal(f"fitting ≤ 60 s each (CPU seconds of the one fitting thread: longest {max(fits):.1f} s, "
                          f"median {statistics.median(fits):.1f} s{on_wall})", bool(max(fits) <= 60),
                          source="polydiff issue #14, item 1"))
    overhead = [r for r in rows if r["task"].startswith("overhead/") and not r["peer"]
                and r["method"] in ("polydiff dpmpp_2m logsnr", "polydiff unipc bh1 order3 logsnr",
                                    "polydiff unipc bh2 logsnr")]
    if overhead:
        worst = max(overhead, key=lambda r: r["ratio_to_ddim"])
        found.append(goal(f"per-step overhead ≤ diffusers DDIM (trailing) at NFE {', '.join(map(str, nfes))}, batch 1 "
                          f"and the large batch, for DPM-Solver++(2M) and UniPC (worst ratio "
                          f"{worst['ratio_to_ddim']:.3g}: {worst['method']}, {worst['task']})",
                          bool(worst["ratio_to_ddim"] <= 1.0), source="polydiff issue #14, item 2"))
    found.append(goal("per-step overhead on a GPU (fp16, 8×4×64×64: ≤ 50 µs per step, no host syncs, CUDA-graph "
                      "capturable)", None, "not measured: this benchmark runs on CPU",
                      source="polydiff issue #14, item 2"))
    return found


def _coverage(done: list[dict], chosen: list[dict]) -> list[dict]:
    """A goal that fails while the run has not reached every problem it was asked for (a report written midway)."""
    from ..benchkit import goal

    if len(done) >= len(chosen) or not done:
        return []
    return [goal(f"every problem of the set run ({len(done)} of {len(chosen)} so far)", False,
                 source="polydiff issue #14, item 1")]


def render(document: dict) -> str:
    """The markdown of a JSON document of this part (for ``--report-only``)."""
    from ..benchkit import render_markdown

    return render_markdown(document, title=TITLE, preamble=_preamble(document["rows"], document))


def _preamble(rows: list[dict], document: dict) -> str:
    """The per-problem ratio table with its geometric mean, the overhead table, the set-up and the notes."""
    names = [p["name"] for p in document["problems"]]
    nfes = list(document.get("options", {}).get("nfe") or NFES)
    lines = ["### Fitted multistep_table error / diffusers' best error, per problem", "",
             "| problem | " + " | ".join(f"NFE {n}" for n in nfes) + " |", "|---|" + "---|" * len(nfes)]
    ratios = {nfe: _ratios(rows, names, nfe) for nfe in nfes}
    for name in names:
        cells = [ratios[n].get(name) for n in nfes]
        lines.append(f"| {name} | " + " | ".join("–" if c is None else
                                                 (f"**{c:.3f}**" if c > 0.8 else f"{c:.3f}") for c in cells) + " |")
    for label, fold in (("geometric mean", _geometric_mean), ("worst", max)):
        lines.append(f"| {label} | " + " | ".join(f"{fold(ratios[n].values()):.3f}" if ratios[n] else "–"
                                                  for n in nfes) + " |")
    lines += ["", "Bold: above the 0.8 target.", ""]
    overhead = [r for r in rows if r["task"].startswith("overhead/")]
    if overhead:
        methods = list(dict.fromkeys(r["method"] for r in overhead))
        tasks = list(dict.fromkeys(r["task"] for r in overhead))
        lines += ["### Per-step overhead, µs (ratio to diffusers DDIM trailing)", "",
                  "| NFE, batch | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
        for task in tasks:
            by = {r["method"]: r for r in overhead if r["task"] == task}
            _, nfe, batch = task.split("/")
            lines.append(f"| {nfe[3:]}, {batch[1:]} | " + " | ".join(
                f"{by[m]['us_per_step']:.1f} ({by[m]['ratio_to_ddim']:.2f})" if m in by else "–" for m in methods)
                + " |")
        lines.append("")
    notes = list(document.get("notes") or [])
    asked = document.get("problems_asked", len(names))
    if len(names) < asked:
        notes.insert(0, f"**Incomplete run: {len(names)} of the {asked} problems asked were run** (the report is "
                        f"written after each problem); the goals above cover those {len(names)} only.")
    setup = (__doc__ or "").split("writes ``core.{md,json}``.", 1)[-1].strip()
    options = document.get("options") or {}
    setup += (f"\n\nThis run: {options.get('samples')} evaluation x_T, {options.get('calibration')} calibration and "
              f"{options.get('validation')} validation x_T per problem, fitting limit {options.get('fit_seconds')} s, "
              f"DOP853 rtol {options.get('rtol')}.")
    return "\n".join(lines) + "\n" + setup + ("\n\n" + "\n".join(f"- {n}" for n in notes) if notes else "")


def run(out_dir, options, *, quick: bool = False, seed: int = 0) -> dict:
    """Run this part with the parsed ``polydiff bench core`` options and write ``core.{md,json}``."""
    from ..benchkit import versions, write_report

    options = resolve(options, quick)
    torch.set_num_threads(1)
    chosen = _chosen(options, quick)
    notes: list[str] = []
    rows: list[dict] = []
    if not options.no_timing and not options.no_peers:
        rows += _overhead_rows(options)
        _log("overhead done")
    def write(done: list[dict]) -> dict:
        facts = {"problems": done, "problems_asked": len(chosen), "options": vars(options), "notes": notes}
        return write_report(out_dir, PACKAGE, quick=quick, seed=seed,
                            versions=versions(["torch", "numpy", "scipy", "diffusers", "polydiff-core"]),
                            better=BETTER, rows=rows, title=TITLE, preamble=_preamble(rows, facts),
                            goals=goals(rows, [p["name"] for p in done], options.nfe) + _coverage(done, chosen),
                            extra=facts)

    done: list[dict] = []
    for problem in [] if options.no_accuracy else chosen:  # the report is rewritten after every problem
        rows += _accuracy_rows(problem, options, notes)
        done.append(problem)
        if len(done) < len(chosen):
            write(done)
    return write(done if not options.no_accuracy else [])
