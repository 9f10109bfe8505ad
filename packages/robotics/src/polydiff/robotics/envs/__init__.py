"""Tasks: ObstacleReach (MuJoCo, MJCF in code) and Push-T (gym-pusht), each with a scripted or planning expert."""

from .obstacle import ObstacleReachEnv, ObstacleReachExpert

__all__ = ["ObstacleReachEnv", "ObstacleReachExpert"]
