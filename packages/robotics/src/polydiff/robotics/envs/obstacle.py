"""ObstacleReach: a planar MuJoCo agent reaches a goal behind a wide obstacle, and its bimodal expert.

The MJCF is written here (nothing is read from disk): a sphere on two slide joints driven by velocity actuators
(force = kv (ctrl - qvel)), a wall of half-width ``WALL_HALF_WIDTH`` between the start (below) and the goal
(above). The expert goes round the wall on the left or on the right with probability 0.5 per episode, so the
demonstrations are bimodal; the time limit leaves room for one detour but not for hesitating between the two,
so a policy that averages the modes drives into the middle of the wall and fails.

Observation (6,): agent x, y, velocity x, y, and the goal's offset from the agent (goal x - x, goal y - y), so a
policy reads how far it still has to go without subtracting two features of very different spread. Action (2,):
commanded velocity in [-1, 1]^2 (m/s).
Success: the agent ends within ``GOAL_RADIUS`` of the goal (the episode terminates there).

With ``obs="image"`` the observation is a dict, as gym-pusht's pixel observations: ``"pixels"`` (size, size, 3)
uint8, an offscreen MuJoCo render from the MJCF's fixed top-down camera ``top`` (the arena fills the frame, the goal
disc in green), and ``"state"`` (4,), the agent's own proprioception (position, velocity). The goal is then seen
only in the image. ``info["full_state"]`` keeps the 6-dimensional state observation for the expert.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless offscreen rendering, unless the caller chose a backend

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402

from .checks import check_action  # noqa: E402

__all__ = ["ObstacleReachEnv", "ObstacleReachExpert", "obstacle_reach_xml", "path_distance", "WALL_HALF_WIDTH",
           "GOAL_RADIUS", "OBS_MODES", "render_top_view"]

WALL_HALF_WIDTH = 0.5
WALL_HALF_THICKNESS = 0.08
AGENT_RADIUS = 0.05
GOAL_RADIUS = 0.05
START_Y, GOAL_Y = -0.6, 0.6
JITTER = 0.05
ARENA = 1.0


def _blocked(a: np.ndarray, b: np.ndarray, half: np.ndarray) -> bool:
    """Whether the segment a -> b enters the open box |x| < half[0], |y| < half[1] (Liang-Barsky clipping)."""
    d = b - a
    low, high = 0.0, 1.0
    for p, q in ((-d[0], a[0] + half[0]), (d[0], half[0] - a[0]), (-d[1], a[1] + half[1]), (d[1], half[1] - a[1])):
        if abs(p) < 1e-12:
            if q <= 0:
                return False
        elif p < 0:
            low = max(low, q / p)
        else:
            high = min(high, q / p)
        if low >= high:
            return False
    return high - low > 1e-9


def path_distance(position, goal) -> float:
    """Length of the shortest path from ``position`` to ``goal`` that keeps the agent's centre out of the wall
    grown by the agent's radius: a straight line where it is clear, else via the grown wall's corners (a
    visibility graph of six points). A potential for reward shaping that, unlike the straight-line distance, does
    not point into the wall."""
    half = np.array([WALL_HALF_WIDTH + AGENT_RADIUS, WALL_HALF_THICKNESS + AGENT_RADIUS])
    position = np.asarray(position, float)[:2]
    if np.all(np.abs(position) < half):  # touching the wall (contacts penetrate a little): step out to its face
        axis = int(np.argmin(half - np.abs(position)))
        face = position.copy()
        face[axis] = np.copysign(half[axis], position[axis] if position[axis] != 0 else 1.0)
        return float(np.linalg.norm(face - position)) + path_distance(face, goal)
    points = [position, *(half * np.array(c) * (1 + 1e-6) for c in
                                                ((-1, -1), (-1, 1), (1, -1), (1, 1))), np.asarray(goal, float)[:2]]
    best = [np.inf] * len(points)
    best[0] = 0.0
    todo = set(range(len(points)))
    while todo:  # Dijkstra on six nodes
        i = min(todo, key=lambda k: best[k])
        todo.discard(i)
        for j in todo:
            if not _blocked(points[i], points[j], half):
                best[j] = min(best[j], best[i] + float(np.linalg.norm(points[i] - points[j])))
    return float(best[-1])


def obstacle_reach_xml(timestep: float = 0.01, kv: float = 20.0) -> str:
    """The MJCF of the scene (agent, wall, arena borders, goal marker)."""
    w, t, r, a = WALL_HALF_WIDTH, WALL_HALF_THICKNESS, AGENT_RADIUS, ARENA
    return f"""
<mujoco model="obstacle_reach">
  <option timestep="{timestep}" gravity="0 0 0" integrator="implicitfast"/>
  <visual><global offwidth="256" offheight="256"/></visual>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1"/>
    <camera name="top" pos="0 0 {a / np.tan(np.pi / 8) + r:.4f}" xyaxes="1 0 0 0 1 0" fovy="45"/>
    <geom name="floor" type="plane" size="{a} {a} 0.05" rgba="0.92 0.92 0.92 1" contype="0" conaffinity="0"/>
    <geom name="wall" type="box" pos="0 0 {r}" size="{w} {t} {r}" rgba="0.55 0.3 0.3 1"/>
    <geom name="border_n" type="box" pos="0 {a} {r}" size="{a} 0.02 {r}" rgba="0.3 0.3 0.3 1"/>
    <geom name="border_s" type="box" pos="0 {-a} {r}" size="{a} 0.02 {r}" rgba="0.3 0.3 0.3 1"/>
    <geom name="border_e" type="box" pos="{a} 0 {r}" size="0.02 {a} {r}" rgba="0.3 0.3 0.3 1"/>
    <geom name="border_w" type="box" pos="{-a} 0 {r}" size="0.02 {a} {r}" rgba="0.3 0.3 0.3 1"/>
    <body name="goal" mocap="true" pos="0 {GOAL_Y} 0.01">
      <geom type="cylinder" size="{GOAL_RADIUS} 0.005" rgba="0.2 0.7 0.2 0.6" contype="0" conaffinity="0"/>
    </body>
    <body name="agent" pos="0 0 {r}">
      <joint name="x" type="slide" axis="1 0 0"/>
      <joint name="y" type="slide" axis="0 1 0"/>
      <geom name="agent" type="sphere" size="{r}" mass="1" rgba="0.2 0.3 0.8 1"/>
    </body>
  </worldbody>
  <actuator>
    <velocity name="vx" joint="x" kv="{kv}" ctrlrange="-1 1" ctrllimited="true"/>
    <velocity name="vy" joint="y" kv="{kv}" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>
</mujoco>
"""


OBS_MODES = ("state", "image")
_RENDERERS: dict = {}
_PLAIN = ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX", "mjRND_HAZE")


def _load_triton_first() -> None:
    """A software OpenGL (Mesa's llvmpipe, what EGL falls back to without a GPU) and triton each bring an LLVM;
    triton imported after the OpenGL context exists (torch imports it when the first optimiser is built) crashes
    the process, so it is imported before, when installed."""
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        try:
            import triton  # noqa: F401
        except Exception:  # noqa: BLE001 - a broken triton is torch's business, not rendering's
            pass


def render_top_view(data: mujoco.MjData, size: int = 64) -> np.ndarray:
    """An offscreen MuJoCo render (size, size, 3) uint8 of ``data`` (an ObstacleReach scene) from the fixed camera
    ``top``. One renderer per size serves every environment of the process (they share the MJCF); shadows and
    reflections are off (they cost ten times the rest on a software OpenGL and show nothing the policy needs).
    RuntimeError when no OpenGL backend works (``MUJOCO_GL``: egl, osmesa or glfw)."""
    renderer = _RENDERERS.get(size)
    if renderer is None:
        _load_triton_first()
        model = mujoco.MjModel.from_xml_string(obstacle_reach_xml())
        try:
            renderer = mujoco.Renderer(model, size, size)
        except Exception as error:  # noqa: BLE001 - any GL failure means the same thing here
            raise RuntimeError(f"obs='image' needs MuJoCo offscreen rendering, which failed with "
                               f"MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}: {error}") from error
        _RENDERERS[size] = renderer
    renderer.update_scene(data, camera="top")
    for flag in _PLAIN:
        renderer.scene.flags[getattr(mujoco.mjtRndFlag, flag)] = False
    return renderer.render().copy()


class ObstacleReachEnv(gym.Env):
    """Gymnasium environment (see the module docstring). ``reset(seed=...)`` draws the start and goal with
    ±``JITTER`` jitter; ``max_episode_steps`` control steps of ``frame_skip`` physics steps each. ``obs``: "state"
    (6,) or "image" ({"pixels": (image_size, image_size, 3) uint8, "state": (4,)}, see the module docstring).

    info: ``success`` (goal reached), ``distance`` (to the goal), ``side`` (-1 when the agent passed the wall on the
    left, +1 on the right, 0 not yet).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, max_episode_steps: int = 40, frame_skip: int = 10, render_mode: str | None = None,
                 obs: str = "state", image_size: int = 64):
        if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps: expected a positive integer, got {max_episode_steps!r}")
        if isinstance(frame_skip, bool) or not isinstance(frame_skip, int) or frame_skip < 1:
            raise ValueError(f"frame_skip: expected a positive integer, got {frame_skip!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode: expected None or 'rgb_array', got {render_mode!r}")
        if obs not in OBS_MODES:
            raise ValueError(f"obs: expected one of {list(OBS_MODES)}, got {obs!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or not 16 <= image_size <= 256:
            raise ValueError(f"image_size: expected an integer in [16, 256], got {image_size!r}")
        self.model = mujoco.MjModel.from_xml_string(obstacle_reach_xml())
        self.data = mujoco.MjData(self.model)
        self.max_episode_steps, self.frame_skip, self.render_mode = max_episode_steps, frame_skip, render_mode
        self.obs_mode, self.image_size = obs, image_size
        self.observation_space = spaces.Box(-np.inf, np.inf, (6,), np.float64) if obs == "state" else spaces.Dict(
            {"pixels": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
             "state": spaces.Box(-np.inf, np.inf, (4,), np.float64)})
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.goal = np.array([0.0, GOAL_Y])
        self.elapsed = 0
        self.side = 0

    @property
    def dt(self) -> float:
        return self.model.opt.timestep * self.frame_skip

    def _state(self) -> np.ndarray:
        position = self.data.qpos[:2]
        return np.concatenate([position, self.data.qvel[:2], self.goal - position]).astype(np.float64)

    def _obs(self):
        state = self._state()
        if self.obs_mode == "state":
            return state
        return {"pixels": render_top_view(self.data, self.image_size), "state": state[:4]}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        start = np.array([0.0, START_Y]) + self.np_random.uniform(-JITTER, JITTER, 2)
        self.goal = np.array([0.0, GOAL_Y]) + self.np_random.uniform(-JITTER, JITTER, 2)
        self.data.qpos[:2] = start
        self.data.mocap_pos[0, :2] = self.goal
        mujoco.mj_forward(self.model, self.data)
        self.elapsed, self.side = 0, 0
        return self._obs(), self._info()

    def _info(self) -> dict:
        distance = float(np.linalg.norm(self.data.qpos[:2] - self.goal))
        info = {"success": distance < GOAL_RADIUS, "distance": distance, "side": self.side,
                "path_distance": path_distance(self.data.qpos[:2], self.goal)}
        if self.obs_mode == "image":
            info["full_state"] = self._state()
        return info

    def step(self, action):
        self.data.ctrl[:] = np.clip(check_action(action, 2), -1.0, 1.0)
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        self.elapsed += 1
        x, y = self.data.qpos[:2]
        if self.side == 0 and abs(y) <= WALL_HALF_THICKNESS and abs(x) > WALL_HALF_WIDTH:
            self.side = -1 if x < 0 else 1
        info = self._info()
        reward = -info["distance"]
        terminated = info["success"]
        truncated = not terminated and self.elapsed >= self.max_episode_steps
        return self._obs(), reward, terminated, truncated, info

    def render(self, size: int = 128):
        """A top-down RGB frame (size, size, 3) uint8, drawn in numpy from the simulator state (no OpenGL
        needed): floor, wall, goal disc, and agent disc."""
        if self.render_mode != "rgb_array":
            return None
        scale = size / (2 * ARENA)
        rows, cols = np.mgrid[0:size, 0:size]
        x, y = (cols + 0.5) / scale - ARENA, ARENA - (rows + 0.5) / scale
        frame = np.full((size, size, 3), 235, np.uint8)
        wall = (np.abs(x) <= WALL_HALF_WIDTH) & (np.abs(y) <= WALL_HALF_THICKNESS)
        frame[wall] = (140, 77, 77)
        frame[(x - self.goal[0]) ** 2 + (y - self.goal[1]) ** 2 <= GOAL_RADIUS**2] = (60, 170, 60)
        ax, ay = self.data.qpos[:2]
        frame[(x - ax) ** 2 + (y - ay) ** 2 <= AGENT_RADIUS**2] = (50, 75, 200)
        return frame

    def close(self):
        pass


class ObstacleReachExpert:
    """The bimodal scripted expert: per episode it picks a side (left or right, probability 0.5 from its own
    seeded generator) and steers through two waypoints beside the wall, then to the goal, at up to full speed.

    ``reset(seed)`` picks the side; ``__call__(obs) -> action (2,)``; ``noise`` adds Gaussian action noise
    (std, in m/s) for deliberately imperfect demonstrations.
    """

    def __init__(self, noise: float = 0.0, gain: float = 6.0):
        if not noise >= 0:
            raise ValueError(f"noise: expected a value >= 0, got {noise!r}")
        self.noise, self.gain = float(noise), float(gain)
        self.rng = np.random.default_rng(0)
        self.side, self.stage = 1, 0

    def reset(self, seed: int | None = None, side: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        if side not in (None, -1, 1):
            raise ValueError(f"side: expected None, -1 or 1, got {side!r}")
        self.side = side if side is not None else (-1 if self.rng.random() < 0.5 else 1)
        self.stage = 0

    def waypoints(self, goal: np.ndarray) -> list[np.ndarray]:
        x = self.side * (WALL_HALF_WIDTH + 0.3)
        return [np.array([x, -0.2]), np.array([x, 0.2]), np.asarray(goal, dtype=np.float64)]

    def __call__(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        position = obs[:2]
        goal = position + obs[4:6]
        points = self.waypoints(goal)
        while self.stage < 2 and np.linalg.norm(points[self.stage] - position) < 0.1:
            self.stage += 1
        delta = points[self.stage] - position
        distance = np.linalg.norm(delta)
        speed = min(1.0, self.gain * distance) if self.stage == 2 else 1.0
        action = delta / max(distance, 1e-9) * speed
        if self.noise:
            action = action + self.noise * self.rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
