"""diffusers interop: run a diffusers model under any polydiff solver, and any polydiff solver in a diffusers loop.

* :func:`from_diffusers` turns a diffusers network (``UNet2DModel``, ``UNet2DConditionModel``, a transformer:
  anything called as ``model(sample, timestep, **cond)``) and its scheduler or scheduler config into a
  :class:`~polydiff.core.denoiser.Denoiser` over the matching :class:`~polydiff.core.schedules.DiscreteSchedule`:
  the same alphas_cumprod (diffusers' own float32 values), the prediction type ("epsilon" -> "eps",
  "v_prediction" -> "v", "sample" -> "x0") and ``clip_sample`` as ``clip_x0``.
* :func:`diffusers_grid` gives the polydiff time grid of a diffusers scheduler's ``timesteps`` (training index k
  is time (k + 1) / N; the run ends at t = 0 when the scheduler's last step goes to alpha-bar = 1, at t = 1 / N
  when it goes to alphas_cumprod[0]), so ``sample(..., grid=diffusers_grid(scheduler, n))`` visits the times
  diffusers would.
* :class:`SolverScheduler` is the stepwise adapter: ``set_timesteps(n)`` then, per timestep,
  ``step(model_output, t, sample).prev_sample``, driving any registered polydiff solver, so a pipeline written
  for diffusers' scheduler contract can swap it in.

The adapter keeps polydiff's solvers as the one implementation of their math: it runs the solver function itself
in a helper thread whose model hands each model call to the pipeline's loop and waits for the pipeline's
``step`` to bring the output back. The thread only computes while the caller waits in ``step``, so the two never
run at the same time.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .denoiser import Denoiser
from .grids import check_grid, make_grid
from .sampling import get_solver
from .schedules import DiscreteSchedule

__all__ = ["from_diffusers", "schedule_from_diffusers", "diffusers_grid", "DiffusersModel", "SolverScheduler",
           "SolverSchedulerOutput", "PREDICTION_TYPES"]

#: diffusers' prediction_type -> polydiff's prediction
PREDICTION_TYPES = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}


def _scheduler(scheduler_or_config):
    """A diffusers scheduler object: the one given, or a DDPMScheduler built from a config mapping."""
    if hasattr(scheduler_or_config, "config") and hasattr(scheduler_or_config, "alphas_cumprod"):
        return scheduler_or_config
    if isinstance(scheduler_or_config, Mapping):
        try:
            import diffusers
        except ImportError as error:
            raise ImportError("polydiff.core.from_diffusers with a scheduler config needs diffusers: "
                              "pip install diffusers") from error
        # private keys such as "_use_default_values" would make diffusers restore defaults over edited values
        config = {key: value for key, value in scheduler_or_config.items() if not key.startswith("_")}
        return diffusers.DDPMScheduler.from_config(config)
    raise ValueError(f"scheduler_or_config: expected a diffusers scheduler or its config (a mapping), got "
                     f"{type(scheduler_or_config).__name__}")


def _config(scheduler) -> dict:
    return dict(scheduler.config)


def schedule_from_diffusers(scheduler_or_config) -> DiscreteSchedule:
    """The polydiff DiscreteSchedule with the diffusers scheduler's alphas_cumprod (its own float32 values, so
    both sides use the same noise levels); ``rescale_betas_zero_snr`` maps to ``zero_terminal_snr``."""
    scheduler = _scheduler(scheduler_or_config)
    config = _config(scheduler)
    if config.get("thresholding"):
        raise ValueError("scheduler_or_config: dynamic thresholding (thresholding=True) has no polydiff "
                         "equivalent; use clip_sample or turn thresholding off")
    if config.get("use_flow_sigmas") or config.get("prediction_type") == "flow_prediction":
        raise ValueError("scheduler_or_config: flow-matching schedulers are not supported; use "
                         "polydiff.core.FlowSchedule with prediction='flow'")
    if config.get("rescale_betas_zero_snr"):
        plain = type(scheduler).from_config({key: value for key, value in config.items() if not key.startswith("_")}
                                            | {"rescale_betas_zero_snr": False})
        abar = plain.alphas_cumprod.double().cpu().numpy()
        return DiscreteSchedule(alphas_cumprod=abar, zero_terminal_snr=True)
    return DiscreteSchedule(alphas_cumprod=scheduler.alphas_cumprod.double().cpu().numpy())


class DiffusersModel:
    """``model(x, t_model, **cond) -> output`` over a diffusers network: passes the fractional training index
    as ``timestep`` (float32), unwraps the output object (``.sample``) or tuple, and keeps the first half of the channels
    of a network that also predicts its variance (``variance_type`` "learned" / "learned_range")."""

    def __init__(self, model, learned_variance: bool = False):
        if not callable(model):
            raise ValueError(f"model: expected a callable diffusers network, got {type(model).__name__}")
        self.model = model
        self.learned_variance = learned_variance

    def __call__(self, x: Tensor, t_model: Tensor, **cond) -> Tensor:
        # float32, as diffusers' own int64 / float32 timesteps: its time embeddings are computed in the
        # timestep's dtype, and a float64 index would give (slightly) another embedding than the integer
        output = self.model(x, t_model.to(torch.float32), **cond)
        if hasattr(output, "sample"):
            output = output.sample
        elif isinstance(output, tuple):
            output = output[0]
        if self.learned_variance and output.shape[1] == 2 * x.shape[1]:
            output = output[:, : x.shape[1]]
        return output


def from_diffusers(model, scheduler_or_config, **denoiser_options) -> Denoiser:
    """A :class:`Denoiser` for a diffusers network trained with the given scheduler (or scheduler config).

    Args:
        model: the network, called as ``model(sample, timestep, **cond)`` (UNet2DModel, UNet2DConditionModel,
            DiT-style transformers); ``cond`` is what ``sample(..., cond=...)`` passes, e.g.
            ``{"encoder_hidden_states": ...}``.
        scheduler_or_config: a diffusers scheduler, or its ``config`` (a mapping with num_train_timesteps,
            beta_start, beta_end, beta_schedule / trained_betas, prediction_type, clip_sample, ...).
        denoiser_options: passed to :class:`Denoiser` (guidance_scale, uncond, guidance_rescale, clip_x0);
            ``clip_x0`` defaults to ``clip_sample_range`` when the config has ``clip_sample=True``.
    Returns:
        a Denoiser whose ``schedule`` is :func:`schedule_from_diffusers` of the scheduler. The network receives
        timesteps as diffusers' training indices (fractional between them for grids that are not on the
        integer timesteps).
    """
    scheduler = _scheduler(scheduler_or_config)
    config = _config(scheduler)
    schedule = schedule_from_diffusers(scheduler)
    prediction_type = config.get("prediction_type", "epsilon")
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"scheduler_or_config: prediction_type {prediction_type!r} is not supported; choices: "
                         f"{list(PREDICTION_TYPES)}")
    if config.get("clip_sample") and "clip_x0" not in denoiser_options:
        denoiser_options["clip_x0"] = float(config.get("clip_sample_range", 1.0))
    learned = config.get("variance_type") in ("learned", "learned_range")
    return Denoiser(DiffusersModel(model, learned), schedule, PREDICTION_TYPES[prediction_type],
                    **denoiser_options)


def _final_time(config: dict, n: int) -> float:
    """Where the scheduler's last step lands: t = 0 (alpha-bar = 1) or t = 1 / N (alphas_cumprod[0])."""
    if "set_alpha_to_one" in config:  # DDIM, PNDM
        return 0.0 if config["set_alpha_to_one"] else 1.0 / n
    return 0.0 if config.get("final_sigmas_type", "zero") == "zero" else 1.0 / n


def diffusers_grid(scheduler, num_inference_steps: int, device=None) -> Tensor:
    """The polydiff grid (num_inference_steps + 1,) float64 of a diffusers scheduler: its ``timesteps`` after
    ``set_timesteps(num_inference_steps)`` (on a copy; the scheduler is left as it was) as times (k + 1) / N,
    then the end time of its last step. Supported: schedulers with one model call per timestep on integer
    timesteps (DDIM, DPMSolverMultistep, UniPCMultistep, DEIS; not Karras / exponential sigmas, whose
    fractional timesteps are rounded by diffusers).

    DDIM steps from timestep k to k - N // num_inference_steps; with "trailing" or "linspace" spacing and a step
    count that does not divide N that is not the next timestep, which no time grid can express; the grid then
    follows the timesteps (the model-call times)."""
    if not hasattr(scheduler, "set_timesteps") or not hasattr(scheduler, "config"):
        raise ValueError(f"scheduler: expected a diffusers scheduler, got {type(scheduler).__name__}")
    config = _config(scheduler)
    for key in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_flow_sigmas"):
        if config.get(key):
            raise ValueError(f"scheduler: {key}=True gives fractional timesteps that diffusers rounds; "
                             "use a polydiff grid kind (e.g. 'karras') instead")
    local = copy.deepcopy(scheduler)
    local.set_timesteps(num_inference_steps)
    n = config["num_train_timesteps"]
    timesteps = local.timesteps.detach().cpu().double().numpy()
    if len(timesteps) != num_inference_steps:
        raise ValueError(f"scheduler: {type(scheduler).__name__} makes {len(timesteps)} model calls for "
                         f"{num_inference_steps} steps; only one call per timestep is supported")
    times = np.concatenate([(timesteps + 1) / n, [_final_time(config, n)]])
    if times[-1] >= times[-2]:
        raise ValueError("scheduler: its last step does not move (the last timestep is already at the end "
                         "time, e.g. 'leading' spacing with set_alpha_to_one=False); choose another spacing")
    return check_grid(torch.as_tensor(times, dtype=torch.float64), "grid").to(device)


# ---------------------------------------------------------------------------------------------- adapter


@dataclass
class SolverSchedulerOutput:
    """What ``SolverScheduler.step`` returns: diffusers' ``prev_sample`` (the state the pipeline calls the model
    on next, or the final sample) and ``pred_original_sample`` (the x0 prediction of the output just given)."""

    prev_sample: Tensor
    pred_original_sample: Tensor | None = None


class _Stop(Exception):
    """Raised inside the solver thread to end a run the caller abandoned."""


class SolverScheduler:
    """diffusers' scheduler contract (``set_timesteps`` / ``timesteps`` / ``scale_model_input`` / ``step``) over
    any polydiff solver.

    Args:
        scheduler_or_config: the diffusers scheduler (or config) the model was trained with.
        solver: a polydiff solver name (``polydiff.core.list_solvers()``).
        grid: a polydiff grid kind, "diffusers" (the timesteps of the given scheduler: :func:`diffusers_grid`;
            needs a scheduler object), or a callable ``steps -> times`` (e.g. a fitted grid).
        final_zero: end a named grid at t = 0 (default: where the diffusers scheduler ends).
        options: solver options (order, variant, eta, generator, ...).

    Use::

        scheduler = SolverScheduler(pipeline.scheduler, solver="unipc", grid="logsnr", variant="bh1")
        scheduler.set_timesteps(8)
        x = noise * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            x = scheduler.step(unet(scheduler.scale_model_input(x, t), t).sample, t, x).prev_sample

    ``timesteps`` holds the model time (diffusers' training index, fractional off the integer timesteps) of every
    model call the solver makes, so multi-stage solvers (``dpm_solver_3``, ``heun``) list more entries than
    steps. ``step`` must receive the model output at the ``sample`` it returned last (the pipeline's loop does
    exactly that); the solver's own state carries its history. Adaptive solvers (unknown call count) are refused.
    """

    order = 1
    init_noise_sigma = 1.0

    def __init__(self, scheduler_or_config, solver: str = "dpmpp_2m", grid="logsnr", *,
                 final_zero: bool | None = None, **options):
        self.diffusers_scheduler = _scheduler(scheduler_or_config)
        self.config = _config(self.diffusers_scheduler)
        self.schedule = schedule_from_diffusers(self.diffusers_scheduler)
        self.solver = get_solver(solver)
        if "adaptive" in self.solver.solver_name or "rtol" in self.solver.options:
            raise ValueError(f"solver: {solver!r} chooses its steps as it goes; the stepwise adapter needs a "
                             "fixed number of model calls")
        unknown = [name for name in options if name not in self.solver.options]
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not an option of solver {solver!r}; its options: "
                             f"{list(self.solver.options)}")
        if not (isinstance(grid, str) or callable(grid)):
            raise ValueError("grid: expected a grid kind, 'diffusers' or a callable steps -> times")
        self.grid_kind = grid
        n = self.config["num_train_timesteps"]
        self.final_zero = _final_time(self.config, n) == 0.0 if final_zero is None else bool(final_zero)
        self.options = options
        prediction_type = self.config.get("prediction_type", "epsilon")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"scheduler_or_config: prediction_type {prediction_type!r} is not supported")
        self.prediction = PREDICTION_TYPES[prediction_type]
        self.clip_x0 = float(self.config.get("clip_sample_range", 1.0)) if self.config.get("clip_sample") else None
        self.learned_variance = self.config.get("variance_type") in ("learned", "learned_range")
        self.grid = None
        self.timesteps = None
        self.num_inference_steps = None
        self._run = None

    # -- diffusers' contract ----------------------------------------------------------------------------------

    def set_timesteps(self, num_inference_steps: int, device=None) -> None:
        """Prepare a run of ``num_inference_steps`` solver steps; ``timesteps`` lists every model call's time."""
        self._stop()
        if isinstance(self.grid_kind, str) and self.grid_kind == "diffusers":
            grid = diffusers_grid(self.diffusers_scheduler, num_inference_steps)
        elif callable(self.grid_kind):
            grid = check_grid(torch.as_tensor(self.grid_kind(num_inference_steps), dtype=torch.float64), "grid",
                              self.schedule)
        else:
            grid = make_grid(self.schedule, num_inference_steps, self.grid_kind, final_zero=self.final_zero)
        if grid.ndim != 1 or grid.shape[0] != num_inference_steps + 1:
            raise ValueError(f"grid: expected {num_inference_steps + 1} times, got shape {tuple(grid.shape)}")
        self.grid = grid
        self.num_inference_steps = num_inference_steps
        self.timesteps = self._call_times(grid).to(device)

    def scale_model_input(self, sample: Tensor, timestep=None) -> Tensor:
        """Identity: a variance-preserving model takes x_t as it is."""
        return sample

    def step(self, model_output: Tensor, timestep, sample: Tensor, return_dict: bool = True,
             generator=None):
        """Hand the model output at ``sample`` to the solver and return the state of its next model call (or,
        after the last call, the final sample) as ``prev_sample``."""
        if self.grid is None:
            raise ValueError("set_timesteps: call it before step")
        if self.learned_variance and model_output.shape[1] == 2 * sample.shape[1]:
            model_output = model_output[:, : sample.shape[1]]
        if self._run is None:
            self._start(sample, generator)
        run = self._run
        if run["pending"] is None:
            raise ValueError("step: the run is over (every model call of the solver has been answered); call "
                             "set_timesteps to start another")
        pending = run["pending"]
        if sample is not pending and (sample.shape != pending.shape or not torch.equal(sample, pending)):
            raise ValueError("sample: expected the prev_sample of the previous step (the state the solver asked "
                             "the model about); the adapter cannot restart a solver from another state")
        if model_output.shape != sample.shape:
            raise ValueError(f"model_output: expected shape {tuple(sample.shape)}, got {tuple(model_output.shape)}")
        x0 = self._x0(model_output, sample, run["pending_t"])
        run["answers"].put(model_output)
        kind, value, t_next = run["asks"].get()
        if kind == "error":
            self._run = None
            raise value
        if kind == "done":
            run["pending"] = None
            self._join()
        else:
            run["pending"], run["pending_t"] = value, self._time(t_next)
        output = SolverSchedulerOutput(value, x0)
        return output if return_dict else (value,)

    # -- the solver thread -----------------------------------------------------------------------------------

    def _x0(self, output: Tensor, x: Tensor, t: Tensor) -> Tensor:
        alpha, sigma = (v.to(x.dtype) for v in self.schedule.alpha_sigma(t.double().cpu()))
        alpha, sigma = alpha.to(x.device), sigma.to(x.device)
        if self.prediction == "eps":
            x0 = (x - sigma * output) / alpha
        elif self.prediction == "v":
            x0 = alpha * x - sigma * output
        else:
            x0 = output
        return x0 if self.clip_x0 is None else x0.clamp(-self.clip_x0, self.clip_x0)

    def _call_times(self, grid: Tensor) -> Tensor:
        """The model time of every call the solver makes on ``grid`` (a dry run with a zero model)."""
        seen = []

        def record(x, t_model, **cond):
            if x.shape[0] != 1:
                raise ValueError(f"solver: {self.solver.solver_name!r} calls the model on several states at once; "
                                 "the stepwise adapter needs one state per call")
            seen.append(t_model.reshape(-1)[0])
            return torch.zeros_like(x)

        denoiser = Denoiser(record, self.schedule, self.prediction)
        options = {k: v for k, v in self.options.items() if k != "generator"}
        with torch.no_grad():
            self.solver(denoiser, torch.zeros(1, 1, dtype=torch.float64), grid, **options)
        return torch.stack(seen).to(torch.float64)

    def _start(self, sample: Tensor, generator) -> None:
        asks, answers = queue.Queue(), queue.Queue()
        run = {"asks": asks, "answers": answers, "pending": None, "pending_t": None, "stop": False}
        grad_enabled = torch.is_grad_enabled()

        def model(x, t_model, **cond):
            asks.put(("call", x, t_model))
            answer = answers.get()
            if run["stop"]:
                raise _Stop
            return answer

        denoiser = Denoiser(model, self.schedule, self.prediction, clip_x0=self.clip_x0)
        options = dict(self.options)
        if generator is not None:
            options["generator"] = generator

        def work():
            try:
                with torch.set_grad_enabled(grad_enabled):
                    out = self.solver(denoiser, sample, self.grid.to(sample.device), **options)
                asks.put(("done", out[0] if isinstance(out, tuple) else out, None))
            except _Stop:
                pass
            except BaseException as error:  # handed to the caller's step()
                asks.put(("error", error, None))

        run["thread"] = threading.Thread(target=work, daemon=True, name="polydiff-solver-scheduler")
        self._run = run
        run["thread"].start()
        kind, value, t_model = asks.get()
        if kind == "error":
            self._run = None
            raise value
        if kind == "done":
            self._run = None
            raise ValueError("solver: finished without calling the model")
        # the first call is at the sample itself; its time is kept to report pred_original_sample
        run["pending"], run["pending_t"] = sample, self._time(t_model)

    def _time(self, t_model: Tensor) -> Tensor:
        n = self.schedule.num_train_timesteps
        return (t_model.reshape(-1)[:1].double() + 1) / n

    def _join(self) -> None:
        run, self._run = self._run, None
        if run is not None:
            run["thread"].join()

    def _stop(self) -> None:
        """End an abandoned run: wake the solver thread, which then exits."""
        run, self._run = self._run, None
        if run is not None and run["thread"].is_alive():
            run["stop"] = True
            run["answers"].put(None)
            run["thread"].join()

    def __del__(self):
        try:
            self._stop()
        except Exception:  # interpreter shutdown
            pass
