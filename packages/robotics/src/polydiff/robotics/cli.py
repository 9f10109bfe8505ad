"""``polydiff robotics demos | train | eval``: demonstrations, policy training and seeded evaluation.

    polydiff robotics demos --task obstacle -n 100 --out demos.npz
    polydiff robotics train demos.npz --out policy/
    polydiff robotics eval policy/ --episodes 50 [--render rollout.gif]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register"]


def _demos(args: argparse.Namespace) -> int:
    from .data import collect_demos

    out = Path(args.out)
    if out.suffix != ".npz":
        raise ValueError(f"--out: expected a .npz file name (the episode dataset format), got {args.out!r}")
    if out.exists() and not args.force:
        raise ValueError(f"--out: {out} exists; pass --force to overwrite it")
    episodes = collect_demos(args.task, args.n, seed=args.seed, noise=args.noise, perturb=args.perturb,
                             progress=not args.quiet, obs=args.obs)
    episodes.save(out, force=args.force)
    modes = episodes.meta.get("mode", [])
    left = sum(m == -1 for m in modes)
    print(f"wrote {len(episodes)} {args.task} episodes ({episodes.obs.shape[0]} steps"
          + (f", {left} left / {len(modes) - left} right" if args.task == "obstacle" else "") + f") to {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from polydiff.core.training import TrainConfig

    from .data import load_episodes
    from .image_policy import ImageDiffusionPolicy, ImageMLPPolicy
    from .policy import DiffusionPolicy, MLPPolicy

    out = Path(args.out)
    if out.exists() and not args.force:
        raise ValueError(f"--out: {out} exists; pass --force to overwrite it")
    episodes = load_episodes(args.demos)
    # image demonstrations train the image policies
    diffusion, mlp = ((ImageDiffusionPolicy, ImageMLPPolicy) if episodes.images is not None
                      else (DiffusionPolicy, MLPPolicy))
    if args.policy == "diffusion":
        policy = diffusion.from_episodes(episodes, n_obs_steps=args.n_obs_steps, horizon=args.horizon,
                                         n_action_steps=args.n_action_steps, prediction=args.prediction)
    else:
        policy = mlp.from_episodes(episodes, n_obs_steps=args.n_obs_steps,
                                   n_action_steps=1 if args.policy == "mlp" else args.n_action_steps)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, ema_decay=0.999,
                         warmup_steps=min(100, args.steps // 10), lr_schedule="cosine", seed=args.seed,
                         checkpoint_dir=args.checkpoint_dir, progress=not args.quiet)
    policy.fit(episodes, config)
    policy.save_pretrained(out, metadata={"demos": str(args.demos), "task": episodes.meta.get("task"),
                                          "train_steps": args.steps})
    print(f"saved {type(policy).__name__} ({len(episodes)} episodes, {args.steps} steps) to {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from polydiff.core.pretrained import read_config

    from .evaluate import EVAL_SEED, rollout
    from .policy import load_policy

    if args.render is not None:
        suffix = Path(args.render).suffix.lower()
        if suffix not in (".gif", ".mp4"):
            raise ValueError(f"--render: expected a .gif or .mp4 file name, got {args.render!r}")
        if Path(args.render).exists() and not args.force:
            raise ValueError(f"--render: {args.render} exists; pass --force to overwrite it")
    policy = load_policy(args.policy)
    task = args.task or read_config(args.policy)["metadata"].get("task")
    if task is None:
        raise ValueError("--task: the policy does not record its task; name it")
    options = {}
    if args.solver is not None:
        options["solver"] = args.solver
    if args.steps is not None:
        options["steps"] = args.steps
    result = rollout(policy, task, args.episodes, seed=args.seed if args.seed is not None else EVAL_SEED,
                     render=1 if args.render else 0, **options)
    if args.render:
        from .video import write_video

        write_video(args.render, result["frames"][0])
    summary = {k: result[k] for k in ("success", "mode_left", "overlap", "final_distance") if k in result}
    summary["episodes"] = args.episodes
    print(json.dumps(summary))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("robotics", help="Diffusion Policy, baselines and planners on ObstacleReach / "
                                                    "Push-T: demos, train, eval")
    commands = parser.add_subparsers(dest="robotics_command", required=True)

    demos = commands.add_parser("demos", help="roll out a task's expert and write an episode dataset (.npz)")
    demos.add_argument("--task", default="obstacle", choices=["obstacle", "pusht", "pusher"],
                       help="task: obstacle (MuJoCo ObstacleReach), pusht (gym-pusht, needs the pusht extra) or "
                            "pusher (gymnasium's Pusher-v5 arm)")
    demos.add_argument("-n", type=int, default=100, help="number of successful episodes to keep")
    demos.add_argument("--obs", default="state", choices=["state", "image"],
                       help="observations recorded (image: 64 x 64 camera frames and proprioception, obstacle only)")
    demos.add_argument("--seed", type=int, default=0, help="first reset seed (episodes use seed, seed + 1, ...)")
    demos.add_argument("--noise", type=float, default=0.0, help="Gaussian action noise std of the expert")
    demos.add_argument("--perturb", type=float, default=0.0,
                       help="DART: Gaussian noise std on the executed action only, the expert's clean action "
                            "recorded (the benchmark's image demonstrations use 0.5)")
    demos.add_argument("--out", required=True, help="output .npz file (obs, action, episode_ends, meta)")
    demos.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    demos.add_argument("--quiet", action="store_true", help="no progress bar")
    demos.set_defaults(func=_demos)

    train = commands.add_parser("train", help="train a policy on an episode dataset and save it (safetensors + "
                                              "JSON)")
    train.add_argument("demos", help="episode dataset (.npz) written by `polydiff robotics demos`")
    train.add_argument("--out", required=True, help="output policy folder")
    train.add_argument("--policy", default="diffusion", choices=["diffusion", "mlp", "chunked-mlp"],
                       help="diffusion (Diffusion Policy), mlp (1-step behaviour cloning) or chunked-mlp")
    train.add_argument("--steps", type=int, default=3000, help="optimizer steps")
    train.add_argument("--batch-size", type=int, default=128, help="windows per optimizer step")
    train.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (cosine decay)")
    train.add_argument("--n-obs-steps", type=int, default=2, help="To: observations conditioned on")
    train.add_argument("--horizon", type=int, default=16, help="Tp: actions predicted per chunk (diffusion)")
    train.add_argument("--n-action-steps", type=int, default=8, help="Ta: actions executed per chunk")
    train.add_argument("--prediction", default="eps", choices=["eps", "x0"],
                       help="diffusion: predict the noise (the paper's default) or the chunk itself (the benchmark's "
                            "choice on pusher and on obstacle images)")
    train.add_argument("--seed", type=int, default=0, help="training seed")
    train.add_argument("--checkpoint-dir", default=None,
                       help="Trainer checkpoint folder; an interrupted run started again resumes from it")
    train.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    evaluate = commands.add_parser("eval", help="seeded closed-loop evaluation of a saved policy")
    evaluate.add_argument("policy", help="policy folder written by `polydiff robotics train`")
    evaluate.add_argument("--episodes", type=int, default=50, help="number of seeded episodes")
    evaluate.add_argument("--task", default=None, choices=["obstacle", "pusht", "pusher"],
                          help="task (default: the one recorded with the policy)")
    evaluate.add_argument("--seed", type=int, default=None,
                          help="first reset seed (default 100000, disjoint from the demonstration seeds)")
    evaluate.add_argument("--solver", default=None, help="core solver for a diffusion policy (default: its own)")
    evaluate.add_argument("--steps", type=int, default=None, help="solver steps for a diffusion policy")
    evaluate.add_argument("--render", default=None, help="write the first episode as a .gif or .mp4")
    evaluate.add_argument("--force", action="store_true", help="overwrite --render if it exists")
    evaluate.set_defaults(func=_eval)
