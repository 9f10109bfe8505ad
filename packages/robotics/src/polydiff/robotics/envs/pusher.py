"""The arm task: gymnasium's Pusher-v5 (a 7-DoF arm pushes a cylinder onto a fixed goal), with a success flag and
a scripted expert.

Pusher-v5 has no success criterion of its own (its reward is the negative object-goal distance, the negative
fingertip-object distance and a torque penalty). Here an episode succeeds when the object's centre ends within
``GOAL_RADIUS`` = 0.08 m of the goal's, the radius of the environment's red goal disk (pusher.xml), i.e. the
object's centre ends on the disk. The wrapper adds ``distance`` (object to goal, m) and ``success`` to every
step's info. Observation (23,): joint angles (7), joint velocities (7), fingertip, object and goal positions
(3 each). 100 steps of 0.05 s. Action (7,), by ``control``: "position" (the default), joint-angle targets (rad)
that a fixed computed-torque PD turns into the motors' torques at every step, ``M (KP (target - q) - KD qdot) +
qfrc_bias`` clipped to the motors' [-2, 2] N m, as Diffusion Policy acts through a low-level controller on its
robot tasks; or "torque", the environment's own joint torques in [-2, 2].

The expert (:class:`PusherExpert`) works on a private copy of the environment's own MuJoCo model, set to the
observed state (the arm's joints and the object's position; the object starts at rest). Only the wrist's fork, a
U of three capsules (a crossbar and two prongs, 0.16 m apart inside), collides with the object, so the expert
lowers the open U over the object (U horizontal) and pushes it with the inside corner between the crossbar and
one prong, the object's centre 0.07 m from both, so that the crossbar and the prong press on it together:

1. bounded least-squares inverse kinematics for two poses, the U ``HOVER`` above the object and the U round it,
   the corner a few centimetres behind the object's centre on the goal-object line and the corner's diagonal
   along that line; for each of the two corners (left or right prong), keeping the one whose second pose the arm
   reaches more closely. The solver starts from one nominal arm configuration and is pulled weakly towards it,
   so the poses are a smooth function of the object's position: a policy learns them from a hundred episodes,
   where random restarts picked among the arm's equivalent solutions (the roll joints differ by up to 3 rad);
2. computed-torque joint control (mass matrix times a PD acceleration, plus the bias forces ``qfrc_bias``) to
   the first pose, then the second;
3. operational-space control of the object's place in the corner and the U's orientation (Jacobian ``mj_jac``,
   the operational-space inertia, bias compensation, null-space damping), its target ``LEAD`` ahead of the
   object's centre towards the goal, re-aimed every step.

Why the push is slow: the object weighs 8 mg (its density is 1e-5) while its slide joints carry 0.04 of
armature and a damping of 0.5 N s/m. MuJoCo scales a contact's softness by the bodies' mass, so a contact with
the object is very soft: at a penetration of 0.05 m it pushes with about 0.02 N, and the object moves at about
0.04 m/s behind one capsule. Pressing with two capsules at once (the corner) pushes it faster, and the corner
holds it deeper without its slipping out (``LEAD`` 0.085 m; behind a single prong anything above 0.07 m lets it
slip through). Objects far from the goal still cannot be pushed onto it in the 5 s episode.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np

from .checks import check_action

__all__ = ["make_pusher", "PusherExpert", "GOAL_RADIUS", "OBS_DIM", "CONTROLS"]

GOAL_RADIUS = 0.08
OBS_DIM = 23
_GOAL = np.array([0.45, -0.05])  # the goal body's position in pusher.xml (the environment never moves it)
_OBJECT_Z = -0.275
_UP = np.array([0.0, 0.0, 1.0])
# the object's centre in the wrist frame when it sits in the U's inside corner at the prong y = -0.1 (side +1) or
# y = +0.1 (side -1): 0.07 m (the object's radius 0.05 plus the capsules' 0.02) from the crossbar (x = 0) and from
# the prong; the push direction is the corner's diagonal (1, side, 0) / sqrt(2)
_CORNER = 0.07
# the arm's configuration behind a typical object (the inverse kinematics' start and the weak pull towards it)
_NOMINAL = np.array([-0.2, 0.8, -1.45, -1.45, -0.7, -0.7, 1.5])
_PULL = 0.02
KP, KD = 150.0, 20.0  # the computed-torque PD of the approach, and of the "position" control's joint targets
CONTROLS = ("position", "torque")
HOVER = 0.04   # m above the object for the first pose
LEAD = 0.085   # m: the contact point's target ahead of the object's centre while pushing
BACK = 0.04    # m: the contact point's distance behind the object's centre at the second pose


class _PusherSuccess(gym.Wrapper):
    """Adds ``distance`` (object centre to goal centre, m) and ``success`` (distance <= GOAL_RADIUS) to info."""

    def _flag(self, obs, info):
        distance = float(np.linalg.norm(np.asarray(obs)[17:19] - np.asarray(obs)[20:22]))
        return {**info, "distance": distance, "success": distance <= GOAL_RADIUS}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, self._flag(obs, info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._flag(obs, info)


def _arm_mass(model, data) -> np.ndarray:
    """The arm's joint-space mass matrix (7, 7) in ``data``'s (forward-computed) state."""
    mass = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, data, mass)
    return mass[:7, :7]


def _pd_torque(mass, bias, q, qdot, target) -> np.ndarray:
    """The computed-torque PD of the module docstring (unclipped)."""
    return mass @ (KP * (target - q) - KD * qdot) + bias


def _pd_target(mass, bias, q, qdot, torque) -> np.ndarray:
    """The joint targets for which :func:`_pd_torque` gives ``torque`` (its inverse)."""
    return q + (np.linalg.solve(mass, torque - bias) + KD * qdot) / KP


class _JointTargets(gym.Wrapper):
    """Actions are joint-angle targets (7, rad); each step applies the computed-torque PD of the module
    docstring, computed on a private copy of the current state, clipped to the motors' range."""

    def __init__(self, env):
        super().__init__(env)
        model = env.unwrapped.model
        self._model, self._data = model, mujoco.MjData(model)
        low, high = model.jnt_range[:7, 0], model.jnt_range[:7, 1]
        self.action_space = gym.spaces.Box((low - 1.0).astype(np.float32), (high + 1.0).astype(np.float32))

    def torque(self, target) -> np.ndarray:
        """The motors' torques (7,) that the PD applies for ``target`` in the current state."""
        m, d, source = self._model, self._data, self.env.unwrapped.data
        d.qpos[:], d.qvel[:] = source.qpos, source.qvel
        mujoco.mj_forward(m, d)
        return np.clip(_pd_torque(_arm_mass(m, d), d.qfrc_bias[:7], d.qpos[:7], d.qvel[:7], target), -2.0, 2.0)

    def step(self, action):
        return self.env.step(self.torque(check_action(action, 7)).astype(np.float32))


def make_pusher(render_mode: str | None = None, max_episode_steps: int = 100, control: str = "position"):
    """Pusher-v5 (100 steps) with the success flag and the ``control`` ("position" or "torque") of the module
    docstring."""
    if control not in CONTROLS:
        raise ValueError(f"control: expected one of {list(CONTROLS)}, got {control!r}")
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode: expected None or 'rgb_array', got {render_mode!r}")
    if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int) or max_episode_steps < 1:
        raise ValueError(f"max_episode_steps: expected a positive integer, got {max_episode_steps!r}")
    kwargs = {"width": 160, "height": 160} if render_mode else {}
    env = _PusherSuccess(gym.make("Pusher-v5", render_mode=render_mode, max_episode_steps=max_episode_steps,
                                  **kwargs))
    return _JointTargets(env) if control == "position" else env


class PusherExpert:
    """The scripted pusher of the module docstring: ``reset(seed)``; ``expert(obs) -> action (7,)``, joint-angle
    targets for ``control="position"`` (those whose PD torques are the expert's), torques for "torque".
    ``noise``: Gaussian noise (std, N m) added to each torque, for imperfect demonstrations."""

    # 1 pushed with a single prong (success 0.44 on the benchmark's episodes); 2 with the corner; 3 solves its
    # poses from one nominal configuration and acts by joint targets
    version = 3

    def __init__(self, noise: float = 0.0, *, hover: float = HOVER, lead: float = LEAD, back: float = BACK,
                 control: str = "position"):
        for name, value in (("noise", noise), ("hover", hover), ("lead", lead), ("back", back)):
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite value >= 0, got {value!r}")
        if control not in CONTROLS:
            raise ValueError(f"control: expected one of {list(CONTROLS)}, got {control!r}")
        self.noise, self.hover, self.lead, self.back, self.control = float(noise), hover, lead, back, control
        env = gym.make("Pusher-v5")
        self.model = env.unwrapped.model
        env.close()
        self.data, self._ik = mujoco.MjData(self.model), mujoco.MjData(self.model)
        self.wrist = self.model.body("r_wrist_roll_link").id
        self.low, self.high = self.model.jnt_range[:7, 0].copy(), self.model.jnt_range[:7, 1].copy()
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.phase, self.poses, self.side = 0, None, 1.0

    def contact(self, side: float | None = None) -> np.ndarray:
        """The object's centre in the wrist frame when it sits in the corner of ``side`` (+1 or -1; the
        expert's chosen one by default)."""
        side = self.side if side is None else side
        return np.array([_CORNER, side * (_CORNER - 0.1), 0.0])

    def orientation(self, direction: np.ndarray, side: float | None = None) -> np.ndarray:
        """The wrist's target rotation: the U horizontal, the diagonal of the corner of ``side`` (the expert's
        chosen one by default) along the horizontal unit vector ``direction``."""
        side = self.side if side is None else side
        diagonal = np.array([1.0, side, 0.0]) / np.sqrt(2.0)
        world = np.stack([direction, np.cross(_UP, direction), _UP], 1)
        wrist = np.stack([diagonal, np.cross(_UP, diagonal), _UP], 1)
        return world @ wrist.T

    def _state(self, obs: np.ndarray) -> None:
        """Set the private copy to the observed state (the object at rest) and compute its kinematics."""
        d = self.data
        d.qpos[:7], d.qvel[:7] = obs[:7], obs[7:14]
        d.qpos[7], d.qpos[8] = obs[18] - _GOAL[1], obs[17] - _GOAL[0]  # obj_slidey, obj_slidex
        d.qvel[7:] = 0.0
        mujoco.mj_forward(self.model, d)

    def solve(self, position: np.ndarray, rotation: np.ndarray, side: float | None = None) -> tuple[np.ndarray, float]:
        """Joint angles (within the limits) putting the contact point of the corner of ``side`` at ``position``
        with the wrist at ``rotation``: bounded least squares from the nominal configuration, pulled weakly
        towards it (not from the arm's current configuration, which would make the poses depend on where the arm
        happened to be); also the residual norm of the pose (the pull left out)."""
        from scipy.optimize import least_squares

        m, d = self.model, self._ik
        contact = self.contact(side)

        def pose_error(q):
            d.qpos[:7] = q
            mujoco.mj_kinematics(m, d)
            frame = d.xmat[self.wrist].reshape(3, 3)
            point = d.xpos[self.wrist] + frame @ contact
            return np.concatenate([point - position, 0.15 * (frame - rotation).ravel()])

        result = least_squares(lambda q: np.concatenate([pose_error(q), _PULL * (q - _NOMINAL)]), _NOMINAL,
                               bounds=(self.low, self.high), max_nfev=100)
        return result.x, float(np.linalg.norm(pose_error(result.x)))

    def plan(self, obs: np.ndarray) -> list[np.ndarray]:
        """The two approach poses (joint angles) for the object's observed position, with the corner whose
        second pose the arm reaches more closely (sets ``side``)."""
        obj = np.array([obs[17], obs[18], _OBJECT_Z])
        direction = np.array([*(_GOAL - obs[17:19]), 0.0])
        direction /= max(np.linalg.norm(direction), 1e-9)
        best = None
        for side in (1.0, -1.0):
            rotation = self.orientation(direction, side)
            above, _ = self.solve(obj - self.back * direction + self.hover * _UP, rotation, side)
            around, error = self.solve(obj - self.back * direction, rotation, side)
            if best is None or error < best[0]:
                best = (error, side, [above, around])
        self.side = best[1]
        return best[2]

    def __call__(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape != (OBS_DIM,):
            raise ValueError(f"obs: expected the Pusher-v5 observation ({OBS_DIM},), got {obs.shape}")
        if not np.all(np.isfinite(obs)):
            raise ValueError("obs: contains NaN or inf")
        m, d = self.model, self.data
        self._state(obs)
        if self.poses is None:
            self.poses = self.plan(obs)
        mass = _arm_mass(m, d)
        q, qdot = d.qpos[:7].copy(), d.qvel[:7].copy()
        if self.phase < 2:
            pose = self.poses[self.phase]
            torque = _pd_torque(mass, d.qfrc_bias[:7], q, qdot, pose)
            if np.abs(pose - q).max() < (0.2 if self.phase == 0 else 0.12):
                self.phase += 1
        else:
            torque = self._push(obs, mass, qdot)
        if self.noise:
            torque = torque + self.noise * self.rng.standard_normal(7)
        if self.control == "torque":
            return np.clip(torque, -2.0, 2.0).astype(np.float32)
        # the joint targets whose PD torques (see _JointTargets) are these: the same clipped torques follow
        return _pd_target(mass, d.qfrc_bias[:7], q, qdot, torque).astype(np.float32)

    def _push(self, obs: np.ndarray, mass: np.ndarray, qdot: np.ndarray) -> np.ndarray:
        """Operational-space control of the contact point (LEAD ahead of the object) and the wrist's rotation."""
        m, d = self.model, self.data
        offset = _GOAL - obs[17:19]
        distance = float(np.linalg.norm(offset))
        direction = np.array([*(offset / max(distance, 1e-9)), 0.0])
        frame = d.xmat[self.wrist].reshape(3, 3)
        point = d.xpos[self.wrist] + frame @ self.contact()
        target = np.array([obs[17], obs[18], _OBJECT_Z]) + direction * min(self.lead, distance)
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        mujoco.mj_jac(m, d, jacp, jacr, point, self.wrist)
        jac = np.vstack([jacp[:, :7], jacr[:, :7]])
        velocity = jac @ qdot
        rotation = self.orientation(direction)
        rotation_error = 0.5 * sum(np.cross(frame[:, i], rotation[:, i]) for i in range(3))
        acceleration = np.concatenate([80.0 * (target - point) - 14.0 * velocity[:3],
                                       20.0 * rotation_error - 4.0 * velocity[3:]])
        inverse = np.linalg.inv(mass)
        inertia = np.linalg.pinv(jac @ inverse @ jac.T, rcond=1e-3)
        null = np.eye(7) - jac.T @ (inverse @ jac.T @ inertia).T
        return jac.T @ inertia @ acceleration + d.qfrc_bias[:7] - null @ qdot
