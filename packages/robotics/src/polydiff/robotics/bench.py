"""``polydiff bench robotics [--quick] --out DIR``: Diffusion Policy against regression baselines, Diffuser and DPPO.

ObstacleReach (MuJoCo, bimodal expert): demonstrations from reset seeds 0, 1, ...; every method is evaluated on
the same seeded episodes from reset seed 100000 on (never a training start). Rows:
    Diffusion Policy sampled with DDPM-100 (the paper) and with core's few-step solvers at 10 NFE or less;
    MLP BC (1-step MSE) and chunked MLP (Ta-step MSE), trained on the same windows with the same Trainer;
    Diffuser (trajectory diffusion, start and goal inpainted with RePaint);
    DPPO before / after: a Diffusion Policy pre-trained on deliberately noisy demonstrations, then fine-tuned
    with PPO over its denoising chain on fresh seeds (500000...), evaluated like every other row.
Metrics: success (share of episodes ending at the goal), mode_left / mode_minority (share of episodes passing the
wall on the left / on the rarer side; 0.5 is ideal), latency_ms (one action chunk, batch 1, one thread, median),
nfe, train_minutes.

Options after the package name (``polydiff bench robotics --out DIR -- --fresh``):
    --fresh        retrain and re-evaluate instead of reusing DIR/robotics-runs/
    --episodes N   evaluation episodes per row (default 100; quick 20)
Trained models and finished rows are kept in DIR/robotics-runs/, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from polydiff.core import benchkit

__all__ = ["run", "budgets", "add_arguments"]

VERSIONS = ("polydiff-core", "polydiff-robotics", "torch", "numpy", "mujoco", "gymnasium", "gym-pusht")
BETTER = {"success": "max", "mode_minority": "max", "overlap": "max", "final_distance": "min", "latency_ms": "min",
          "nfe": "min", "train_minutes": "min"}
TASK = "ObstacleReach"
PUSHT = "Push-T"
IMAGE = "ObstacleReach (image)"
PUSHER = "Pusher-v5"
# DPPO's settings (polydiff.robotics.dppo.dppo_finetune keywords): DDIM-10 chain, exploration noise 0.1 on the
# fine-tuned steps, PPO clip, actor / critic learning rates, sparse success reward plus potential-based shaping
# fine-tuned steps only; 2 PPO epochs over minibatches of 512 decisions keep an iteration cheap
DPPO = {"steps": 10, "fine_tune_steps": 4, "min_std": 0.1, "clip_range": 0.1, "lr": 1e-4, "critic_lr": 1e-3,
        "update_epochs": 2, "minibatch_size": 512, "shaping": 1.0, "gamma": 0.99, "gae_lambda": 0.95}


# Push-T: the paper's horizons (To = 2, Tp = 16, Ta = 8) on state observations; a wider UNet than ObstacleReach's
# and 15,000 steps (on validation episodes, reset seeds from 200000, DDIM-10: success 0.79 / coverage 0.83 on
# 100 episodes against 0.53 / 0.78 on 30 after 6,000 steps)
PUSHT_BUDGET = {"pusht_demos": 100, "pusht_policy": {"channels": [64, 128, 256], "horizon": 16, "n_action_steps": 8},
                "pusht_policy_steps": 15000, "pusht_mlp_steps": 4000, "pusht_batch": 256, "pusht_episodes": 50,
                "pusht_ddpm_episodes": 50}


# Pusher-v5 (the arm task): ObstacleReach's policy sizes and horizons on the 23-dimensional state, joint-angle
# targets as actions, the chunk predicted directly (x0): predicting the noise, the policy barely used the state
PUSHER_BUDGET = {"pusher_demos": 100,
                 "pusher_policy": {"channels": [32, 64], "horizon": 8, "n_action_steps": 4, "prediction": "x0"},
                 "pusher_policy_steps": 3000, "pusher_mlp_steps": 2000, "pusher_batch": 256, "pusher_episodes": 50}


# ObstacleReach from images: the state policy's demonstration seeds, horizons and UNet, with the CNN encoder on
# 64 x 64 offscreen renders plus the agent's position and velocity; smaller batches than the state policy's 256
# (the encoder makes a window about four times dearer). The demonstrations are DART's (executed actions perturbed
# by N(0, 0.5^2), the expert's clean action recorded) and the policy predicts the chunk itself (x0). On
# validation episodes (reset seeds from 200000, DDIM-10): 0.54 with clean demonstrations, 0.78 at perturb 0.3 and
# 1.00 at 0.5 (50 episodes); at 0.5 on 200 episodes 0.95 predicting the noise, 0.98 predicting x0. 3000 steps at
# batch 128 (0.44) and 1000 clean demonstrations (0.48) did no better than the clean 200
IMAGE_BUDGET = {"image_demos": 200, "image_perturb": 0.5, "image_prediction": "x0", "image_size": 64,
                "image_policy_steps": 4000, "image_policy_batch": 64, "image_mlp_steps": 2000, "image_mlp_batch": 64,
                "image_random_shift": 0, "image_episodes": 50}


# Diffuser's plan executed with proportional tracking of its positions (Diffuser.tracking_gain), a second row
# beside the open-loop one; on 50 validation episodes (reset seeds from 200000) gains 0 / 1 / 2 / 3 / 5 / 10 scored
# 0.34 / 0.88 / 0.92 / 0.88 / 0.92 / 0.86
DIFFUSER_TRACKING_GAIN = 2.0


def budgets(quick: bool) -> dict:
    """Data, training and evaluation budgets of every method (the markdown lists them)."""
    policy = {"channels": [32, 64], "horizon": 8, "n_action_steps": 4}
    if quick:
        return {"demos": 60, "policy_steps": 2500, "policy_batch": 64, "mlp_steps": 800, "diffuser_steps": 150,
                "batch_size": 64, "policy": policy, "diffuser_channels": [16, 32],
                "diffuser_planner": {"horizon": 24, "window_pad": 4, "replan_every": 24},
                "diffuser_tracking_gain": DIFFUSER_TRACKING_GAIN, "dppo_demos": 10,
                "dppo_noise": 0.0, "dppo_pretrain_steps": 100, "dppo_iterations": 2, "dppo_envs": 8,
                "dppo": dict(DPPO, update_epochs=2), "episodes": 10, "ddpm_episodes": 4, "latency_repeats": 5,
                **PUSHT_BUDGET, "pusht_demos": 0, **PUSHER_BUDGET, "pusher_demos": 0, **IMAGE_BUDGET,
                "image_demos": 0}
    return {"demos": 200, "policy_steps": 6000, "policy_batch": 256, "mlp_steps": 2000,
            "diffuser_steps": 3000, "batch_size": 64, "policy": policy, "diffuser_channels": [32, 64],
            "diffuser_planner": {"horizon": 24, "window_pad": 4, "replan_every": 24},
            "diffuser_tracking_gain": DIFFUSER_TRACKING_GAIN,
            "dppo_demos": 20, "dppo_noise": 0.0, "dppo_pretrain_steps": 1000, "dppo_iterations": 70, "dppo_envs": 100,
            "dppo": dict(DPPO), "episodes": 50, "ddpm_episodes": 50, "latency_repeats": 21, **PUSHT_BUDGET,
            **PUSHER_BUDGET, **IMAGE_BUDGET}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fresh", action="store_true", help="retrain and re-evaluate everything")
    parser.add_argument("--episodes", type=int, default=None, help="evaluation episodes per row")


def _parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="polydiff bench robotics")
    add_arguments(parser)
    args = parser.parse_args([a for a in (argv or []) if a != "--"])
    if args.episodes is not None and args.episodes < 1:
        raise ValueError(f"--episodes: expected a positive integer, got {args.episodes}")
    return args


def _train_config(steps: int, batch: int, seed: int, checkpoint_dir: Path, device: str = "cpu"):
    from polydiff.core.training import TrainConfig

    return TrainConfig(steps=steps, batch_size=batch, lr=1e-3, ema_decay=0.999, warmup_steps=min(100, steps // 10),
                       lr_schedule="cosine", seed=seed, device=device, checkpoint_dir=str(checkpoint_dir),
                       checkpoint_every=max(250, steps // 6), keep_last=1, log_every=50)


def _trained(name: str, build, episodes, steps: int, batch: int, seed: int, runs: Path, fresh: bool,
             device: str = "cpu", tag: dict | None = None):
    """Train (or reuse) a model; returns (model, train_minutes). The core Trainer's checkpoints under
    runs/checkpoints/<name> let an interrupted training of the same seed and tag resume exactly (run.json there
    says which; checkpoints of another run are set aside and training starts afresh). The record beside the model keeps its
    steps, seed, train_minutes, the device it was trained on and ``tag`` (what else must match for a reuse: the
    number of demonstrations, the network's width...)."""
    model_dir, record = runs / "models" / name, runs / "models" / f"{name}.json"
    model = build()
    if model_dir.exists() and record.exists() and not fresh:
        saved = json.loads(record.read_text())
        if saved.get("steps") == steps and saved.get("seed") == seed and saved.get("tag") == tag:
            return type(model).from_pretrained(model_dir), saved["train_minutes"]
    print(f"[robotics] training {name} ({steps} steps on {device})", flush=True)
    start = time.perf_counter()
    checkpoints = runs / "checkpoints" / name
    # the checkpoints resume only a run of the same seed and tag (same demonstrations and network)
    stamp, wanted = checkpoints / "run.json", {"seed": seed, **({"tag": tag} if tag is not None else {})}
    resume = not fresh and stamp.exists() and json.loads(stamp.read_text()) == wanted
    checkpoints.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(wanted))
    model.fit(episodes, _train_config(steps, batch, seed, checkpoints, device), resume=None if resume else False)
    minutes = (time.perf_counter() - start) / 60
    model = model.cpu()
    model.save_pretrained(model_dir)
    record.write_text(json.dumps({"steps": steps, "seed": seed, "train_minutes": minutes, "device": device,
                                  **({"tag": tag} if tag is not None else {})}))
    return model.eval(), minutes


def trained_record(runs: Path, name: str) -> dict:
    """The JSON record written beside a trained (or fine-tuned) model, {} when there is none."""
    record = Path(runs) / "models" / f"{name}.json"
    return json.loads(record.read_text()) if record.exists() else {}


def _evaluate_row(policy, label: str, episodes: int, keep: dict, task: str = "obstacle", **options) -> dict:
    from .evaluate import rollout

    print(f"[robotics] evaluating {label} on {episodes} episodes", flush=True)
    result = rollout(policy, task, episodes, **options)
    keep[label] = result["paths"]
    if task == "pusht":
        return {"success": result["success"], "overlap": result["overlap"]}
    if task == "pusher":
        return {"success": result["success"], "final_distance": result["final_distance"]}
    return {"success": result["success"], "mode_left": result["mode_left"],
            "mode_minority": min(result["mode_left"], result["mode_right"])}


EXPERT_TASKS = {"pusht": "Push-T", "pusher": "Pusher-v5"}  # the tasks whose demonstrations come from collect_demos


def expert_demos(task: str, runs: Path, episodes: int, seed: int = 0):
    """The first ``episodes`` successful expert episodes of ``task`` ("pusht" or "pusher") from reset seed ``seed``
    on (``collect_demos``), kept in runs/<task>_demos.npz (a file holding more of them, in the same seed order, is
    cut to the first ``episodes``; one collected by another version of the expert is collected again)."""
    from .data import collect_demos, load_episodes
    from .tasks import expert_version

    path = Path(runs) / f"{task}_demos.npz"
    if path.exists():
        demos = load_episodes(path)
        if (len(demos) >= episodes and demos.meta.get("seed") == seed
                and demos.meta.get("expert_version", 1) == expert_version(task)):
            return demos if len(demos) == episodes else demos.subset(range(episodes))
    print(f"[robotics] collecting {episodes} {EXPERT_TASKS[task]} demonstrations", flush=True)
    demos = collect_demos(task, episodes, seed=seed)
    demos.save(path, force=True)
    return demos


def expert_task_models(task: str, demos, budget: dict, seed: int, runs: Path, fresh: bool, device: str = "cpu",
                       only: tuple | None = None) -> dict:
    """Train (or reuse) the Diffusion Policy and both MLP baselines of ``task`` ("pusht" or "pusher") from the
    budget's ``<task>_policy``, ``<task>_policy_steps``, ``<task>_mlp_steps`` and ``<task>_batch``:
    name -> (model, train_minutes)."""
    from .policy import DiffusionPolicy, MLPPolicy

    policy, mlp_steps = budget[f"{task}_policy"], budget[f"{task}_mlp_steps"]
    specs = {f"{task}_diffusion_policy": (lambda: DiffusionPolicy.from_episodes(demos, **policy),
                                          budget[f"{task}_policy_steps"]),
             f"{task}_mlp_bc": (lambda: MLPPolicy.from_episodes(demos, n_action_steps=1), mlp_steps),
             f"{task}_chunked_mlp": (lambda: MLPPolicy.from_episodes(demos, n_action_steps=policy["n_action_steps"]),
                                     mlp_steps)}
    tag = {"demos": len(demos), "policy": policy}
    version = demos.meta.get("expert_version", 1)
    if version != 1:  # models trained on a later expert's demonstrations (a first version's records lack the key)
        tag["expert_version"] = version
    return {name: _trained(name, build, demos, steps, budget[f"{task}_batch"], seed, runs, fresh, device, tag)
            for name, (build, steps) in specs.items() if only is None or name in only}


def run(out_dir, *, quick: bool = False, seed: int = 0, argv=None) -> dict:
    """Run the benchmark; write ``out_dir/robotics.json``, ``robotics.md`` and the figures."""
    import torch

    torch.set_num_threads(int(os.environ.get("POLYDIFF_THREADS", "1")))
    args = _parse(argv)
    started = time.perf_counter()
    budget = budgets(quick)
    if args.episodes is not None:
        budget["episodes"] = budget["ddpm_episodes"] = args.episodes
    out = Path(out_dir)
    runs = out / "robotics-runs" / ("quick" if quick else "full")
    runs.mkdir(parents=True, exist_ok=True)
    rows, paths = [], {}

    from .data import collect_demos
    from .diffuser import Diffuser
    from .dppo import dppo_finetune
    from .evaluate import chunk_latency_ms
    from .policy import DiffusionPolicy, MLPPolicy

    demos = collect_demos("obstacle", budget["demos"], seed=seed)
    modes = np.array(demos.meta["mode"])
    batch = budget["batch_size"]
    episodes = budget["episodes"]

    def row(method, metrics, task=TASK, **extra):
        rows.append({"task": task, "method": method, "peer": False, **metrics, **extra})
        print(f"[robotics]   {json.dumps({k: v for k, v in rows[-1].items() if k != 'task'})}", flush=True)

    # ---------------------------------------------------------------- Diffusion Policy
    policy, minutes = _trained("diffusion_policy", lambda: DiffusionPolicy.from_episodes(demos, **budget["policy"]), demos,
                               budget["policy_steps"], budget["policy_batch"], seed, runs, args.fresh)
    samplers = [("DDPM-100", "ddpm", 100, 100), ("DDIM-10", "ddim", 10, 10), ("DPM-Solver++(2M)-10", "dpmpp_2m", 10, 10),
                ("DPM-Solver++(2M)-5", "dpmpp_2m", 5, 5), ("DPM-Solver++(2M)-3", "dpmpp_2m", 3, 3)]
    for label, solver, steps, nfe in samplers:
        n = budget["ddpm_episodes"] if solver == "ddpm" else episodes
        metrics = _evaluate_row(policy, f"Diffusion Policy {label}", n, paths, solver=solver, steps=steps)
        metrics["latency_ms"] = chunk_latency_ms(policy, budget["latency_repeats"] if nfe <= 10 else 3,
                                                 solver=solver, steps=steps)
        row(f"Diffusion Policy ({label})", metrics, nfe=nfe, train_minutes=minutes, episodes=n)

    # ---------------------------------------------------------------- regression baselines
    for name, label, ta in (("mlp_bc", "MLP BC (1-step MSE)", 1), ("chunked_mlp", "chunked MLP (Ta-step MSE)", budget["policy"]["n_action_steps"])):
        model, minutes = _trained(name, lambda ta=ta: MLPPolicy.from_episodes(demos, n_action_steps=ta), demos,
                                  budget["mlp_steps"], batch, seed, runs, args.fresh)
        metrics = _evaluate_row(model, label, episodes, paths)
        metrics["latency_ms"] = chunk_latency_ms(model, budget["latency_repeats"])
        row(label, metrics, nfe=1, train_minutes=minutes, episodes=episodes)

    # ---------------------------------------------------------------- Diffuser
    planner, minutes = _trained("diffuser", lambda: Diffuser.from_episodes(demos, channels=budget["diffuser_channels"],
                                                                           **budget["diffuser_planner"]),
                                demos, budget["diffuser_steps"], batch, seed, runs, args.fresh,
                                tag={"channels": budget["diffuser_channels"], **budget["diffuser_planner"]})
    metrics = _evaluate_row(planner, "Diffuser", episodes, paths)
    from polydiff.core.benchkit import median_time

    obs = np.zeros((1, demos.obs_dim))
    metrics["latency_ms"] = 1000 * median_time(lambda: planner.plan(obs), repeats=5, warmup=1)
    row(f"Diffuser (RePaint inpainting, {planner.steps} steps)", metrics, nfe=planner.steps, train_minutes=minutes,
        episodes=episodes)
    gain = budget.get("diffuser_tracking_gain", 0.0)
    if gain:
        planner.tracking_gain = gain
        latency = metrics["latency_ms"]  # the same plans: one plan costs what it cost above
        metrics = _evaluate_row(planner, "Diffuser, tracked plan", episodes, paths)
        metrics["latency_ms"] = latency
        planner.tracking_gain = 0.0
        row(f"Diffuser, plan tracked (gain {gain:g})", metrics, nfe=planner.steps, train_minutes=minutes,
            episodes=episodes)

    # ---------------------------------------------------------------- DPPO
    # deliberately weak start: few demonstrations (optionally noisy), a short pre-training
    noisy = collect_demos("obstacle", budget["dppo_demos"], seed=seed, noise=budget["dppo_noise"])
    start_name = dppo_start_name(budget)
    start_policy, minutes = _trained(start_name, lambda: DiffusionPolicy.from_episodes(noisy, **budget["policy"]),
                                     noisy, budget["dppo_pretrain_steps"], batch, seed, runs, args.fresh)
    before = _evaluate_row(start_policy, "DPPO before", episodes, paths)
    before_label = f"DPPO before (DP on {budget['dppo_demos']} demos, DDIM-10)"
    row(before_label, before, nfe=10, train_minutes=minutes, episodes=episodes)
    tuned_name = f"{start_name}_dppo"
    saved = trained_record(runs, tuned_name)
    settings = {"iterations": budget["dppo_iterations"], "envs": budget["dppo_envs"], **budget["dppo"]}
    if saved.get("settings") == settings and (runs / "models" / tuned_name).exists() and not args.fresh:
        # a fine-tuning run with these exact settings (from the same start) was done before: reuse it
        start_policy = DiffusionPolicy.from_pretrained(runs / "models" / tuned_name)
        history, tune_minutes = saved["history"], saved["tune_minutes"]
    else:
        print(f"[robotics] DPPO fine-tuning ({budget['dppo_iterations']} iterations x {budget['dppo_envs']} envs)",
              flush=True)
        start = time.perf_counter()
        history = dppo_finetune(start_policy, "obstacle", iterations=budget["dppo_iterations"],
                                envs=budget["dppo_envs"], **budget["dppo"],
                                log=lambda r: print(f"[robotics]   dppo {json.dumps(r)}", flush=True))
        tune_minutes = (time.perf_counter() - start) / 60
        start_policy.save_pretrained(runs / "models" / tuned_name)
        (runs / "models" / f"{tuned_name}.json").write_text(json.dumps(
            {"settings": settings, "history": history, "tune_minutes": tune_minutes}))
    after = _evaluate_row(start_policy, "DPPO after", episodes, paths)
    row("DPPO after (fine-tuned, DDIM-10)", after, nfe=10, train_minutes=minutes + tune_minutes, episodes=episodes)

    # ---------------------------------------------------------------- ObstacleReach from images
    if budget["image_demos"]:
        _image_rows(budget, seed, runs, args.fresh, row, paths, out)

    # ---------------------------------------------------------------- Push-T
    if budget["pusht_demos"]:
        _pusht_rows(budget, seed, runs, args.fresh, row, paths, out)
    pusher_expert = None
    if budget["pusher_demos"]:
        pusher_expert = _pusher_rows(budget, seed, runs, args.fresh, row, paths)

    figures = _figures(out, paths)
    wall = (time.perf_counter() - started) / 60
    preamble = _preamble(rows, budget, quick, wall, modes, history)
    return benchkit.write_report(out, "robotics", quick=quick, seed=seed, versions=benchkit.versions(VERSIONS),
                                 better=BETTER, rows=rows, preamble=preamble, figures=figures,
                                 goals=_goals(rows, budget, quick, wall),
                                 title="polydiff-robotics: Diffusion Policy, regression baselines, Diffuser and DPPO",
                                 extra={"budgets": budget, "wall_minutes": wall, "dppo_history": history,
                                        "demo_mode_left": float(np.mean(modes == -1)),
                                        "pusher_expert": pusher_expert})


def dppo_start_name(budget: dict) -> str:
    """The DPPO start's model name: its demonstrations' count and noise (the bench keeps one model per start)."""
    noise = budget["dppo_noise"]
    return "dppo_pretrained" if not noise and budget["dppo_demos"] == 20 else \
        f"dppo_pretrained_{budget['dppo_demos']}demos_noise{noise:g}"


def image_models(budget: dict, seed: int, runs: Path, fresh: bool) -> dict:
    """Train (or reuse) the image Diffusion Policy and the image MLP BC on ``image_demos`` ObstacleReach
    demonstrations with 64 x 64 frames: name -> (model, train_minutes)."""
    from .data import collect_demos
    from .image_policy import ImageDiffusionPolicy, ImageMLPPolicy

    perturb = budget.get("image_perturb", 0.0)
    demos = collect_demos("obstacle", budget["image_demos"], seed=seed, obs="image", image_size=budget["image_size"],
                          perturb=perturb)
    shift, prediction = budget["image_random_shift"], budget.get("image_prediction", "eps")
    specs = {"image_diffusion_policy": (lambda: ImageDiffusionPolicy.from_episodes(
                 demos, random_shift=shift, prediction=prediction, **budget["policy"]),
                                        budget["image_policy_steps"], budget["image_policy_batch"]),
             "image_mlp_bc": (lambda: ImageMLPPolicy.from_episodes(demos, n_action_steps=1, random_shift=shift),
                              budget["image_mlp_steps"], budget["image_mlp_batch"])}
    models = {}
    for name, (build, steps, batch) in specs.items():
        tag = {"demos": len(demos), "image_size": budget["image_size"], "policy": budget["policy"], "batch": batch}
        if shift:
            tag["random_shift"] = shift
        if perturb:
            tag["perturb"] = perturb
        x0 = name == "image_diffusion_policy" and prediction == "x0"
        if x0:
            tag["prediction"] = prediction
        # one model folder (and checkpoint folder) per batch size, augmentation, demonstration kind and
        # prediction, so that none resumes another
        folder = (name + ("" if batch == 64 else f"_batch{batch}") + (f"_shift{shift}" if shift else "")
                  + (f"_dart{perturb:g}" if perturb else "") + ("_x0" if x0 else ""))
        models[name] = _trained(folder, build, demos, steps, batch, seed, runs, fresh, tag=tag)
    return models


def _image_rows(budget, seed, runs, fresh, row, paths, out: Path) -> None:
    from .evaluate import chunk_latency_ms

    models = image_models(budget, seed, runs, fresh)
    n = budget["image_episodes"]
    policy, minutes = models["image_diffusion_policy"]
    for label, solver, steps in (("DDIM-10", "ddim", 10), ("DPM-Solver++(2M)-5", "dpmpp_2m", 5)):
        metrics = _evaluate_row(policy, f"Image Diffusion Policy {label}", n, paths, solver=solver, steps=steps)
        metrics["latency_ms"] = chunk_latency_ms(policy, budget["latency_repeats"], solver=solver, steps=steps)
        row(f"Diffusion Policy, CNN encoder ({label})", metrics, task=IMAGE, nfe=steps, train_minutes=minutes,
            episodes=n)
    _camera_figure(out, budget["image_size"])
    model, minutes = models["image_mlp_bc"]
    metrics = _evaluate_row(model, "Image MLP BC", n, paths)
    metrics["latency_ms"] = chunk_latency_ms(model, budget["latency_repeats"])
    row("MLP BC, CNN encoder (1-step MSE)", metrics, task=IMAGE, nfe=1, train_minutes=minutes, episodes=n)


def _camera_figure(out: Path, size: int) -> None:
    """robotics-obstacle-camera.png: what the image policy sees, frames of the first evaluation episode's expert
    run at 4x (nearest neighbour)."""
    from PIL import Image

    from .data import expert_episode
    from .evaluate import EVAL_SEED
    from .tasks import make_env

    obs, _, _ = expert_episode("obstacle", EVAL_SEED, env=make_env("obstacle", obs="image", image_size=size))
    frames = obs["pixels"][np.linspace(0, len(obs["pixels"]) - 1, 5).round().astype(int)]
    strip = np.concatenate([np.pad(f, ((2, 2), (2, 2), (0, 0)), constant_values=255) for f in frames], axis=1)
    Image.fromarray(strip).resize((strip.shape[1] * 4, strip.shape[0] * 4), Image.NEAREST).save(
        out / "robotics-obstacle-camera.png")


def _pusht_rows(budget, seed, runs, fresh, row, paths, out: Path) -> None:
    from .evaluate import chunk_latency_ms

    demos = expert_demos("pusht", runs, budget["pusht_demos"], seed)
    models = expert_task_models("pusht", demos, budget, seed, runs, fresh)
    policy, minutes = models["pusht_diffusion_policy"]
    n = budget["pusht_episodes"]
    for label, solver, steps in (("DDPM-100", "ddpm", 100), ("DDIM-10", "ddim", 10),
                                 ("DPM-Solver++(2M)-5", "dpmpp_2m", 5)):
        episodes = budget["pusht_ddpm_episodes"] if solver == "ddpm" else n
        metrics = _evaluate_row(policy, f"Push-T Diffusion Policy {label}", episodes, paths, task="pusht",
                                solver=solver, steps=steps)
        metrics["latency_ms"] = chunk_latency_ms(policy, budget["latency_repeats"] if steps <= 10 else 3,
                                                 solver=solver, steps=steps)
        row(f"Diffusion Policy ({label})", metrics, task=PUSHT, nfe=steps, train_minutes=minutes, episodes=episodes,
            train_device=trained_record(runs, "pusht_diffusion_policy").get("device", "cpu"))
    # one rendered rollout of the first evaluation episode (DDIM-10), every 5th frame at a quarter of the size
    from .evaluate import rollout
    from .video import write_video

    frames = rollout(policy, "pusht", 1, render=1, solver="ddim", steps=10)["frames"][0]
    write_video(out / "robotics-pusht-rollout.gif", [f[::4, ::4] for f in frames[::5]])
    for name, label in (("pusht_mlp_bc", "MLP BC (1-step MSE)"), ("pusht_chunked_mlp", "chunked MLP (Ta-step MSE)")):
        model, minutes = models[name]
        metrics = _evaluate_row(model, f"Push-T {label}", n, paths, task="pusht")
        metrics["latency_ms"] = chunk_latency_ms(model, budget["latency_repeats"])
        row(label, metrics, task=PUSHT, nfe=1, train_minutes=minutes, episodes=n,
            train_device=trained_record(runs, name).get("device", "cpu"))


def _pusher_rows(budget, seed, runs, fresh, row, paths) -> dict:
    """Pusher-v5 rows: the scripted expert on the evaluation episodes (a reference), the Diffusion Policy with
    three samplers and both MLP baselines. Returns the expert's success on its demonstration seeds and on the
    evaluation episodes."""
    from .data import expert_episode
    from .evaluate import EVAL_SEED, chunk_latency_ms
    from .tasks import make_env, make_expert

    demos = expert_demos("pusher", runs, budget["pusher_demos"], seed)
    models = expert_task_models("pusher", demos, budget, seed, runs, fresh)
    n = budget["pusher_episodes"]
    env, expert = make_env("pusher"), make_expert("pusher")
    print(f"[robotics] evaluating the Pusher-v5 expert on {n} episodes", flush=True)
    outcomes = [expert_episode("pusher", EVAL_SEED + i, env=env, expert=expert)[2] for i in range(n)]
    env.close()
    attempts = demos.meta.get("attempts")
    row("scripted expert (IK approach, operational-space push)",
        {"success": float(np.mean([o["success"] for o in outcomes])),
         "final_distance": float(np.mean([o["distance"] for o in outcomes]))}, task=PUSHER, episodes=n,
        demo_attempts=attempts, demo_success=len(demos) / attempts if attempts else None)
    policy, minutes = models["pusher_diffusion_policy"]
    for label, solver, steps in (("DDPM-100", "ddpm", 100), ("DDIM-10", "ddim", 10),
                                 ("DPM-Solver++(2M)-5", "dpmpp_2m", 5)):
        metrics = _evaluate_row(policy, f"Pusher Diffusion Policy {label}", n, paths, task="pusher",
                                solver=solver, steps=steps)
        metrics["latency_ms"] = chunk_latency_ms(policy, budget["latency_repeats"] if steps <= 10 else 3,
                                                 solver=solver, steps=steps)
        row(f"Diffusion Policy ({label})", metrics, task=PUSHER, nfe=steps, train_minutes=minutes, episodes=n)
    for name, label in (("pusher_mlp_bc", "MLP BC (1-step MSE)"), ("pusher_chunked_mlp", "chunked MLP (Ta-step MSE)")):
        model, minutes = models[name]
        metrics = _evaluate_row(model, f"Pusher {label}", n, paths, task="pusher")
        metrics["latency_ms"] = chunk_latency_ms(model, budget["latency_repeats"])
        row(label, metrics, task=PUSHER, nfe=1, train_minutes=minutes, episodes=n)
    return {"demo_attempts": demos.meta.get("attempts"), "demos": len(demos),
            "demo_success": len(demos) / demos.meta["attempts"] if demos.meta.get("attempts") else None}


def _figures(out: Path, paths: dict) -> list[str]:
    """Trajectory plots of four methods and the image policy (PNG), one Diffusion Policy rollout (GIF) and the
    image policy's camera (PNG, written by the image rows); Pusher-v5: the object's paths under three methods
    (PNG)."""
    from polydiff.core.optional import require

    require("matplotlib", extra="polydiff-robotics[bench]", purpose="the figures of polydiff bench robotics")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from .envs.obstacle import WALL_HALF_THICKNESS, WALL_HALF_WIDTH

    diffuser = "Diffuser, tracked plan" if "Diffuser, tracked plan" in paths else "Diffuser"
    shown = [k for k in ("Diffusion Policy DDIM-10", "MLP BC (1-step MSE)", "chunked MLP (Ta-step MSE)", diffuser,
                         "Image Diffusion Policy DPM-Solver++(2M)-5") if k in paths]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.4), squeeze=False)
    for ax, name in zip(axes[0], shown, strict=True):
        ax.add_patch(Rectangle((-WALL_HALF_WIDTH, -WALL_HALF_THICKNESS), 2 * WALL_HALF_WIDTH, 2 * WALL_HALF_THICKNESS,
                               color="#8c4d4d"))
        for path in paths[name][:40]:
            ax.plot(path[:, 0], path[:, 1], lw=0.8, alpha=0.7, color="#3050c8" if path[-1, 0] < 0 else "#d07020")
        ax.plot([0], [0.6], "o", color="#3caa3c", ms=8)
        ax.set(xlim=(-1, 1), ylim=(-1, 1), aspect="equal", xticks=[], yticks=[],
               title=name.replace("Image Diffusion Policy DPM-Solver++(2M)-5", "from images, DPM-Solver++(2M)-5"))
    fig.tight_layout()
    names = ["robotics-obstacle-paths.png"]
    fig.savefig(out / names[0], dpi=80, bbox_inches="tight")
    plt.close(fig)

    from .envs.obstacle import ObstacleReachEnv
    from .video import write_video

    if "Diffusion Policy DDIM-10" in paths:
        from .evaluate import EVAL_SEED

        env = ObstacleReachEnv(render_mode="rgb_array")
        frames = []
        for i, path in enumerate(paths["Diffusion Policy DDIM-10"][:2]):
            env.reset(seed=EVAL_SEED + i)  # the evaluated episode's goal
            for point in path:
                env.data.qpos[:2] = point
                frames.append(env.render(96))
        write_video(out / "robotics-obstacle-rollout.gif", frames)
        names.append("robotics-obstacle-rollout.gif")
    if (out / "robotics-obstacle-camera.png").exists() and "Image Diffusion Policy DDIM-10" in paths:
        names.append("robotics-obstacle-camera.png")
    if (out / "robotics-pusht-rollout.gif").exists() and "Push-T Diffusion Policy DDIM-10" in paths:
        names.append("robotics-pusht-rollout.gif")
    shown = [k for k in ("Pusher Diffusion Policy DDIM-10", "Pusher MLP BC (1-step MSE)",
                         "Pusher chunked MLP (Ta-step MSE)") if k in paths]
    if shown:  # the object's paths on the table, the goal disk in red
        from matplotlib.patches import Circle

        from .envs.pusher import GOAL_RADIUS

        fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.4), squeeze=False)
        for ax, name in zip(axes[0], shown, strict=True):
            ax.add_patch(Circle((0.45, -0.05), GOAL_RADIUS, color="#e06060", alpha=0.5))
            for path in paths[name][:40]:
                near = np.linalg.norm(path[-1] - np.array([0.45, -0.05])) <= GOAL_RADIUS
                ax.plot(path[:, 0], path[:, 1], lw=0.8, alpha=0.8, color="#3caa3c" if near else "#3050c8")
                ax.plot(path[:1, 0], path[:1, 1], ".", color="#555555", ms=3)
            ax.set(xlim=(0.2, 0.7), ylim=(-0.4, 0.1), aspect="equal", title=name.removeprefix("Pusher "),
                   xticks=[], yticks=[])
        fig.tight_layout()
        fig.savefig(out / "robotics-pusher-paths.png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        names.append("robotics-pusher-paths.png")
    return names


ISSUE = "issue 11"


def _goals(rows, budget, quick, wall) -> list[dict]:
    """The issue's targets, each judged from this run's rows (benchkit goals)."""
    obstacle = [r for r in rows if r["task"] == TASK]
    by = {r["method"]: r for r in obstacle}
    dp = [r for r in obstacle if r["method"].startswith("Diffusion Policy")]
    few = [r for r in dp if r["nfe"] <= 10]
    best = max(few, key=lambda r: (r["success"] >= 0.95 and r["mode_minority"] >= 0.3, r["success"],
                                   -r["latency_ms"])) if few else None
    mlp, chunk = by.get("MLP BC (1-step MSE)"), by.get("chunked MLP (Ta-step MSE)")
    before = next((r for r in obstacle if r["method"].startswith("DPPO before")), None)
    after = next((r for r in obstacle if r["method"].startswith("DPPO after")), None)
    goals = []
    if best is not None:
        ddpm = by.get("Diffusion Policy (DDPM-100)")
        goals.append(benchkit.goal(
            "ObstacleReach success ≥ 0.95 with each mode ≥ 30 %",
            bool(best["success"] >= 0.95 and best["mode_minority"] >= 0.3),
            f"{best['method']} {best['success']:.2f}, left/right {best['mode_left']:.2f}/{1 - best['mode_left']:.2f}"
            + (f" (DDPM-100: {ddpm['success']:.2f})" if ddpm else ""), ISSUE))

        def worse(r):  # lower success, or it loses a mode the diffusion policy keeps
            return r["success"] <= best["success"] - 0.05 or r["mode_minority"] < 0.3 <= best["mode_minority"]

        if mlp and chunk:
            goals.append(benchkit.goal(
                "both MLP baselines visibly worse (success at least 5 points lower, or a mode under 30 % that the "
                "diffusion policy keeps)", bool(worse(mlp) and worse(chunk)),
                f"MLP BC {mlp['success']:.2f} (minority mode {mlp['mode_minority']:.2f}), chunked MLP "
                f"{chunk['success']:.2f} (minority mode {chunk['mode_minority']:.2f})",
                f"{ISSUE}; reference on the issue's own quick obstacle task: diffusion policy 1.00, MLP 1-step 0.94, "
                "chunked MLP 0.66"))
        # the fastest few-step sampler that keeps the best few-step success (within 5 points)
        good = [r for r in few if r["success"] >= max(q["success"] for q in few) - 0.05]
        fastest = min(good, key=lambda r: r["latency_ms"])
        goals.append(benchkit.goal(
            "≤ 10-NFE chunk latency ≤ 10 ms on one thread (the fastest sampler within 5 points of the best few-step "
            "success)", bool(fastest["latency_ms"] <= 10),
            f"{fastest['method']} {fastest['latency_ms']:.1f} ms (median, batch 1"
            + (f"; DDPM-100 {by['Diffusion Policy (DDPM-100)']['latency_ms']:.0f} ms)"
               if "Diffusion Policy (DDPM-100)" in by else ")"),
            f"{ISSUE}; references: DDPM-100 577 ms and DDIM-10 57 ms as measured by the issue; lerobot's async "
            "server ~0.35 s per chunk (lerobot #146 / #2486)"))
    if before and after:
        gain = after["success"] - before["success"]
        goals.append(benchkit.goal(
            "DPPO raises success by ≥ 10 points over its start", bool(gain >= 0.10 - 1e-9),
            f"{before['success']:.2f} → {after['success']:.2f} ({100 * gain:+.0f} points; "
            f"{budget['dppo_iterations']} iterations × {budget['dppo_envs']} episodes; left share "
            f"{before['mode_left']:.2f} → {after['mode_left']:.2f})", ISSUE))
    image = [r for r in rows if r["task"] == IMAGE]
    image_dp = [r for r in image if r["method"].startswith("Diffusion Policy")]
    image_text = "ObstacleReach from images (64 x 64 offscreen renders and the agent's position and velocity, a " \
        "CNN encoder with spatial softmax): the state target, success ≥ 0.95 with each mode ≥ 30 %"
    if image_dp:
        top = max(image_dp, key=lambda r: (r["success"] >= 0.95 and r["mode_minority"] >= 0.3, r["success"],
                                           -r["latency_ms"]))
        image_mlp = next((r for r in image if "MLP" in r["method"]), None)
        goals.append(benchkit.goal(
            image_text, bool(top["success"] >= 0.95 and top["mode_minority"] >= 0.3),
            f"{top['method']} {top['success']:.2f}, left/right {top['mode_left']:.2f}/{1 - top['mode_left']:.2f}, "
            f"{top['latency_ms']:.1f} ms per chunk with the encoder"
            + (f"; the state policy {best['method']} {best['success']:.2f}" if best is not None else "")
            + (f"; MLP BC on the same images {image_mlp['success']:.2f} (minority mode "
               f"{image_mlp['mode_minority']:.2f})" if image_mlp else "")
            + f" ({budget['image_demos']} demonstrations"
            + (f" (DART, perturb {budget['image_perturb']:g})" if budget.get("image_perturb") else "")
            + f", {budget['image_episodes']} episodes)",
            f"{ISSUE} (image observations once state works; the target is the state one)"))
    else:
        goals.append(benchkit.goal(image_text, None if quick else False,
                                   "not run by the quick benchmark" if quick else "not run by this benchmark",
                                   f"{ISSUE} (image observations once state works; the target is the state one)"))
    pt = [r for r in rows if r["task"] == PUSHT]
    pt_dp = [r for r in pt if r["method"].startswith("Diffusion Policy")]
    pt_mlp = [r for r in pt if "MLP" in r["method"]]
    if pt_dp and pt_mlp:
        top = max(pt_dp, key=lambda r: (r["overlap"], r["success"]))
        mlp_best = max(r["success"] for r in pt_mlp)
        pt_met = bool(top["overlap"] >= 0.85 and top["success"] > mlp_best)
        pt_text = (f"{top['method']} coverage {top['overlap']:.2f}, success {top['success']:.2f}; MLP BC / chunked MLP "
                   + " / ".join(f"success {r['success']:.2f}, coverage {r['overlap']:.2f}" for r in pt_mlp)
                   + f" ({budget['pusht_demos']} demonstrations)")
    else:
        pt_met, pt_text = (None if quick else False), ("not run by the quick benchmark" if quick else
                                                       "not run by this benchmark")
    goals.append(benchkit.goal(
        "Push-T mean final coverage ≥ 0.85 and success above the MLP baselines", pt_met, pt_text,
        f"{ISSUE}; references: Diffusion Policy paper, Push-T state, DP-CNN 0.95 / 0.91 (max / mean-of-last "
        "overlap), LSTM-GMM 0.67, IBC 0.90 (Chi et al., 2023, Table 1); lerobot's model card: average max overlap "
        "0.959, success 63.8 % over 500 episodes"))
    arm = [r for r in rows if r["task"] == PUSHER]
    arm_expert = next((r for r in arm if r["method"].startswith("scripted expert")), None)
    arm_dp = [r for r in arm if r["method"].startswith("Diffusion Policy")]
    arm_mlp = [r for r in arm if "MLP" in r["method"]]
    if arm_expert and arm_dp and arm_mlp:
        goals.append(benchkit.goal(
            "an arm task (Pusher-v5) with an expert that succeeds on most seeds (success > 0.5 on the evaluation "
            "episodes; object centre within the 0.08 m goal disk at the end)", bool(arm_expert["success"] > 0.5),
            f"scripted expert {arm_expert['success']:.2f} on the {arm_expert['episodes']} evaluation episodes "
            f"(mean final distance {arm_expert['final_distance']:.3f} m)"
            + (f"; {arm_expert['demo_success']:.2f} on the demonstration seeds ({budget['pusher_demos']} successes "
               f"in {arm_expert['demo_attempts']} episodes)" if arm_expert.get("demo_attempts") else ""), ISSUE))
        top = max(arm_dp, key=lambda r: (r["success"], -r["final_distance"]))
        goals.append(benchkit.goal(
            "Pusher-v5: Diffusion Policy success above both MLP baselines",
            bool(top["success"] > max(r["success"] for r in arm_mlp)),
            f"{top['method']} {top['success']:.2f} (final distance {top['final_distance']:.3f} m); "
            + ", ".join(f"{r['method']} {r['success']:.2f} ({r['final_distance']:.3f} m)" for r in arm_mlp)
            + f"; {budget['pusher_demos']} demonstrations", ISSUE))
    else:
        goals.append(benchkit.goal(
            "an arm task (Pusher-v5) with Diffusion Policy against both MLP baselines", None if quick else False,
            "not run by the quick benchmark" if quick else "not run by this benchmark", ISSUE))
    goals.append(benchkit.goal("`--quick` ≤ 3 minutes", bool(wall <= 3) if quick else None,
                               f"{wall:.1f} minutes on this machine" if quick else
                               f"measured by the quick run, not this one (this full run took {wall:.0f} minutes)",
                               ISSUE))
    return goals


def _preamble(rows, budget, quick, wall, modes, history) -> str:
    lines = []
    lines += ["## Protocol and budgets", "",
              f"- Demonstrations: {budget['demos']} successful expert episodes (reset seeds from 0), "
              f"{np.mean(modes == -1):.2f} of them pass on the left. Every row is evaluated on the same "
              f"{budget['episodes']} episodes from reset seed 100000 (DDPM-100: the first {budget['ddpm_episodes']}),"
              " never a training start.",
              f"- Diffusion Policy: UNet1D {tuple(budget['policy']['channels'])} with FiLM, To = 2, "
              f"Tp = {budget['policy']['horizon']}, Ta = {budget['policy']['n_action_steps']}, eps prediction, 100-step "
              f"squared-cosine DDPM schedule, min-max normalisation, x0 clipped to [-1, 1]; core Trainer, "
              f"{budget['policy_steps']} steps, batch {budget['policy_batch']}, AdamW 1e-3 cosine, EMA 0.999; sampled "
              "through a traced (torch.jit) copy of the UNet at inference.",
              f"- Baselines: MLP (256, 256, 256) on the same To = 2 history, {budget['mlp_steps']} steps, same "
              f"optimiser; MLP BC predicts 1 action, the chunked MLP Ta = {budget['policy']['n_action_steps']}.",
              f"- Diffuser: UNet1D {tuple(budget['diffuser_channels'])} over (position, velocity, action) trajectories of "
              f"{budget['diffuser_planner']['horizon']} steps, trained on the windows that reach at most "
              f"{budget['diffuser_planner']['window_pad']} steps past an episode's end (those starting near its "
              f"start), {budget['diffuser_steps']} steps; plans with RePaint (20 DDPM steps) with the start state and "
              "the goal position (at the last step) inpainted, and executes the plan's actions "
              + ("open loop (one plan per episode)" if budget['diffuser_planner']['replan_every']
                 >= budget['diffuser_planner']['horizon'] else
                 f"replanning every {budget['diffuser_planner']['replan_every']} steps")
              + (f"; the 'plan tracked' row executes the same plans with a proportional correction towards the "
                 f"planned positions (action = planned action + {budget['diffuser_tracking_gain']:g} × (planned "
                 "position − position), clipped to the demonstrations' action range)."
                 if budget.get("diffuser_tracking_gain") else "."),
              f"- DPPO: Diffusion Policy pre-trained {budget['dppo_pretrain_steps']} steps on {budget['dppo_demos']} "
              f"demonstrations (expert action noise std {budget['dppo_noise']} m/s), then {budget['dppo_iterations']} "
              f"PPO iterations of {budget['dppo_envs']} lockstep episodes (reset seeds from 500000) over its "
              f"{budget['dppo']['steps']}-step DDIM chain: exploration noise std {budget['dppo']['min_std']} "
              f"(normalised actions) on the last {budget['dppo']['fine_tune_steps']} denoising steps, which alone enter "
              f"the loss; reward 1 at the goal plus potential-based shaping {budget['dppo']['shaping']} × (decrease of "
              f"the shortest path length round the wall to the goal), gamma {budget['dppo']['gamma']}; a critic MLP with GAE (lambda "
              f"{budget['dppo']['gae_lambda']}) over chunk decisions, advantages normalised over the batch; clip "
              f"{budget['dppo']['clip_range']} on per-element mean log-probability ratios, actor lr {budget['dppo']['lr']:g}, "
              f"critic lr {budget['dppo']['critic_lr']:g}, {budget['dppo']['update_epochs']} epochs over minibatches of "
              f"{budget['dppo']['minibatch_size']} decisions, gradient norm 1. "
              "Before and after are sampled alike: the deterministic DDIM-10 chain, no exploration noise. "
              "The settings and the number of iterations were chosen on 100 validation episodes (reset seeds from "
              "200000, evaluated every 5 iterations), never on the reported ones.",
              "- latency_ms: median CPU time of one `predict_action_chunk` (batch 1, one torch thread; Diffuser: one "
              "plan), measured as process CPU time because the machine was shared with other jobs.",
              "- mode_left is in the JSON rows; the table shows mode_minority = min(left, right) share (0.5 ideal).",
              ""]
    if budget["pusht_demos"]:
        lines[-1:-1] = [
            f"- Push-T (gym-pusht, state observations, 300 steps): {budget['pusht_demos']} successful episodes of the "
            "planning expert (`PushTExpert`; coverage > 0.95, the first successes from reset seed 0 on); every "
            f"row on the same {budget['pusht_episodes']} episodes from reset seed 100000. Diffusion Policy UNet1D "
            f"{tuple(budget['pusht_policy']['channels'])}, To = 2, Tp = {budget['pusht_policy']['horizon']}, Ta = "
            f"{budget['pusht_policy']['n_action_steps']}, {budget['pusht_policy_steps']} steps at batch "
            f"{budget['pusht_batch']}; MLP BC and chunked MLP {budget['pusht_mlp_steps']} steps. success = final "
            "coverage > 0.95 (the environment's own), overlap = mean final coverage."
            + (" train_minutes of the rows marked train_device = cuda in the JSON were measured on a GPU."
               if any(r.get("train_device") == "cuda" for r in rows) else "")]
    if budget.get("image_demos"):
        lines[-1:-1] = [
            f"- ObstacleReach (image): {budget['image_demos']} demonstrations of the same seeds"
            + (f", DART's (Laskey et al., 2017: each executed action perturbed by N(0, "
               f"{budget['image_perturb']:g}²), the expert's clean action recorded, so the episodes show how the "
               "expert recovers from off-path states)" if budget.get("image_perturb") else "")
            + f", with a {budget['image_size']} x {budget['image_size']} RGB frame per step, an offscreen MuJoCo "
            "render from "
            "the fixed top-down camera of the MJCF (the goal is seen only there), and the agent's position and "
            "velocity (4) as proprioception. Each of the To = 2 frames goes through one CNN (convolutions "
            "(8, 16, 32) with GroupNorm and Mish, the first two with stride 2, 32 keypoints by spatial softmax, a "
            "linear layer to 64 features), trained end to end with the policy; the features and the normalised "
            "proprioception of both steps condition the same UNet1D "
            f"{tuple(budget['policy']['channels'])} (Tp = {budget['policy']['horizon']}, Ta = "
            f"{budget['policy']['n_action_steps']}) through FiLM, {budget.get('image_prediction', 'eps')} "
            f"prediction. {budget['image_policy_steps']} steps at batch {budget['image_policy_batch']} (the state "
            f"policy: {budget['policy_steps']} at {budget['policy_batch']}); the "
            f"MLP BC row puts the same encoder under the baseline's MLP, {budget['image_mlp_steps']} steps at batch "
            f"{budget['image_mlp_batch']}"
            + (f", both with random shifts of up to {budget['image_random_shift']} pixels (DrQ) in training. "
               if budget["image_random_shift"] else ". ")
            + f"{budget['image_episodes']} episodes from reset seed 100000; latency_ms includes the encoder."]
    if budget.get("pusher_demos"):
        lines[-1:-1] = [
            "- Pusher-v5 (gymnasium, 7-DoF arm, 100 steps of 0.05 s; actions are joint-angle targets that a fixed "
            "computed-torque PD turns into the environment's torques, `make_env(\"pusher\")`'s default "
            "control=\"position\"): success = the object's centre "
            "ends within 0.08 m of the goal's (the radius of the environment's goal disk; the environment's reward "
            "is the negative distance and defines no success). Demonstrations: the first "
            f"{budget['pusher_demos']} successful episodes of the scripted expert (`PusherExpert`) from reset seed 0 "
            f"on; every row on the same {budget['pusher_episodes']} episodes from reset seed 100000, the expert's "
            f"row included. Diffusion Policy UNet1D {tuple(budget['pusher_policy']['channels'])}, To = 2, Tp = "
            f"{budget['pusher_policy']['horizon']}, Ta = {budget['pusher_policy']['n_action_steps']}, "
            f"{budget['pusher_policy'].get('prediction', 'eps')} prediction, "
            f"{budget['pusher_policy_steps']} steps at batch {budget['pusher_batch']}; MLP BC and chunked MLP "
            f"{budget['pusher_mlp_steps']} steps. final_distance = mean final object-goal distance (m)."]
    if history:
        lines += ["DPPO training success per iteration: "
                  + ", ".join(f"{h['success']:.2f}" for h in history), ""]
    return "\n".join(lines)
