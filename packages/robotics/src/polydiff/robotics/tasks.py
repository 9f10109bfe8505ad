"""The task registry: name -> environment factory, expert factory and what an episode's outcome means."""

from __future__ import annotations

__all__ = ["TASKS", "make_env", "make_expert", "expert_version", "check_task"]

TASKS = ("obstacle", "pusht", "pusher")


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task: expected one of {list(TASKS)}, got {task!r}")
    return task


def make_env(task: str, **kwargs):
    """A fresh gymnasium environment of ``task`` (Push-T needs the ``pusht`` extra: gym-pusht; pusher is
    gymnasium's Pusher-v5 with a success flag)."""
    check_task(task)
    if task == "obstacle":
        from .envs.obstacle import ObstacleReachEnv

        return ObstacleReachEnv(**kwargs)
    if task == "pusher":
        from .envs.pusher import make_pusher

        return make_pusher(**kwargs)
    from .envs.pusht import make_pusht

    return make_pusht(**kwargs)


def _expert_class(task: str):
    check_task(task)
    if task == "obstacle":
        from .envs.obstacle import ObstacleReachExpert

        return ObstacleReachExpert
    if task == "pusher":
        from .envs.pusher import PusherExpert

        return PusherExpert
    from .envs.pusht import PushTExpert

    return PushTExpert


def make_expert(task: str, noise: float = 0.0):
    """The task's expert: ``reset(seed)`` then ``expert(obs) -> action``."""
    return _expert_class(task)(noise=noise)


def expert_version(task: str) -> int:
    """The version of the task's expert (its class's ``version``, 1 where it has none), kept in the meta of the
    demonstrations it collects so that demonstrations of an earlier expert are not reused as its own."""
    return int(getattr(_expert_class(task), "version", 1))
