"""``BatchedMimicEnv``: N imitation characters stepped per call, the ``vector_entry_point`` of
every ``mimicgym`` imitation id (see the class docstring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv

from mimicgym.envs.mimic.env import MimicEnv, Outcome
from mimicgym.envs.mimic.observation import Kinematics
from mimicgym.envs.mimic.reward import TERMS, RewardConfig


class BatchedMimicEnv(VectorEnv):
    """``num_envs`` imitation characters, their physics stepped in ``threads`` threads and their
    observations and rewards computed for the whole batch at once.

    ## Description
    The vectorised :class:`~mimicgym.envs.mimic.env.MimicEnv` (same keywords; see its
    docstring for the character, the clip and the PD control), and the ``vector_entry_point``
    of every ``mimicgym`` imitation id. Character ``i`` is exactly what ``gym.make`` of the id
    gives, reset with seed ``s + i`` and given the same actions: the same ``MjData`` stepping
    (:meth:`MimicEnv.advance` per control step, the solver's warm start carried over) and the
    single env's own batch methods for the PD targets, the observation, the reward and the
    episode end (:meth:`MimicEnv.controls`, :meth:`MimicEnv.evaluate`), so
    trajectories agree to rounding and the number of threads never changes a result.

    Physics: ``threads`` threads pull the characters one at a time from a shared queue (MuJoCo
    releases the GIL inside its steps). ``mujoco.rollout`` is not used: it restarts the
    constraint solver's warm start on every call and cannot return it (it is not part of
    ``mjSTATE_FULLPHYSICS``), which moves a walk's observations by about 2e-3 within 13 control
    steps; nor does it return the post-step kinematics or the contacts that the observation
    and the contact check read.

    ## Action Space
    ``Box(-1, 1, (num_envs, A), float32)``, one row per character;
    ``single_action_space`` is :class:`MimicEnv`'s (A = 28 for humanoid3d, 69 for SMPL). A row
    of the wrong shape or with a non-finite entry raises ``ValueError`` naming the character.

    ## Observation Space
    ``Box(-inf, inf, (num_envs, n), float32)``; ``single_observation_space`` is
    :class:`MimicEnv`'s (n = 255 for humanoid3d with the reference targets, 431 for SMPL).

    ## Rewards
    As :class:`MimicEnv`: ``r_I = 0.65 r_p + 0.1 r_v + 0.15 r_e + 0.1 r_c`` (with ``task``,
    ``(1 - w_G) r_I + w_G r_G``); a float64 array of shape ``(num_envs,)``.

    ## Starting State
    As :class:`MimicEnv` (reference state initialisation with ``rsi=True``), each character
    with its own generator: ``reset(seed=s)`` seeds character ``i`` with ``s + i`` (a list of
    ``num_envs`` seeds sets each); ``reset(options={"reset_mask": mask})`` (bool, shape
    ``(num_envs,)``) resets only the masked characters.

    ## Episode End
    Termination and truncation as :class:`MimicEnv` (bad floor contacts, tracking error;
    ``episode_seconds``, the end of a non-looping clip). Autoreset is
    ``AutoresetMode.SAME_STEP``: the observation returned with a finished episode is already
    the first of the next one.

    ## Information
    As ``SyncVectorEnv`` of :class:`MimicEnv` in same-step mode: each key of the single env's
    info holds an array of shape ``(num_envs,)`` (``reward_terms`` a dict of them) with its
    mask ``_key``; for a character whose episode ended, the step's values move to
    ``info["final_info"]`` (masks ``_key`` there), the top level holds the new episode's
    ``phase`` (masked out, zero, for the other keys), ``info["final_obs"]`` is a float32
    array of shape ``(num_envs, n)`` (the last observation where ``info["_final_obs"]`` is
    True, the current one elsewhere). Neither key is present on a step where no episode ended.
    ``reset`` returns ``phase`` and ``_phase``.

    ## Arguments
    - ``num_envs=1``: number of characters N.
    - ``threads=1``: threads stepping the physics (at most ``num_envs``); results do not
      depend on it. More than one pays where cores are free, not beside a trainer using them.
    - ``render_mode=None``: None or "rgb_array"; ``render()`` returns one frame per character
      (each beside its reference ghost).
    - ``clip``, ``character``, ``betas``, ``control_freq``, ``episode_seconds``, ``rsi``,
      ``early_termination``, ``allowed_contacts``, ``max_tracking_error``, ``action_scale``,
      ``reward_config``, ``reference_targets``, ``task``, ``target_speed``, ``width``,
      ``height``: as :class:`MimicEnv`, the same for every character.

    ```python
    import gymnasium as gym
    envs = gym.make_vec("mimicgym/MimicWalk-v0", num_envs=16,
                        vectorization_mode="vector_entry_point", threads=2)
    ```

    ## Version History
    - v0: initial version: same-step autoreset, ``reset_mask``, per-character seeds
      ``s + i``, threaded physics, trajectories equal to :class:`MimicEnv`'s.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30,
                "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, clip: str = "walk", character: str = "humanoid3d", betas=None,
                 control_freq: int = 30, episode_seconds: float = 10.0, rsi: bool = True,
                 early_termination: bool = True, allowed_contacts: tuple[str, ...] | None | str = "default",
                 max_tracking_error: float | None = None, action_scale: float = 0.5,
                 reward_config: RewardConfig | str | Mapping | None = None, reference_targets: bool = True,
                 task: bool = False, target_speed: float = 1.0, render_mode: str | None = None,
                 width: int = 480, height: int = 480, threads: int = 1) -> None:
        for name, value in (("num_envs", num_envs), ("threads", threads)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        # One single env holds the model, the reference and the batch methods all characters share.
        self.single_env = env = MimicEnv(
            clip=clip, character=character, betas=betas, control_freq=control_freq,
            episode_seconds=episode_seconds, rsi=rsi, early_termination=early_termination,
            allowed_contacts=allowed_contacts, max_tracking_error=max_tracking_error,
            action_scale=action_scale, reward_config=reward_config, reference_targets=reference_targets,
            task=task, target_speed=target_speed, render_mode=render_mode, width=width, height=height)
        self._renderer = None
        self.num_envs = n = int(num_envs)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": env.metadata["render_fps"]}
        self.max_episode_steps = env.max_episode_steps
        self.single_action_space, self.single_observation_space = env.action_space, env.observation_space
        self.action_space = gym.vector.utils.batch_space(env.action_space, n)
        self.observation_space = gym.vector.utils.batch_space(env.observation_space, n)

        self.datas = [mujoco.MjData(env.model) for _ in range(n)]
        self._kin = Kinematics.zeros(env.model, n)
        self._root = int(env.char.body_ids[0])  # the character's root body
        self._k = np.zeros(n, dtype=np.int64)  # physics step into the reference, per character
        self._steps = np.zeros(n, dtype=np.int64)  # control steps into the episode
        self._target_dir = np.tile([1.0, 0.0], (n, 1))
        self._bad = np.zeros(n, dtype=bool)
        self._rngs: list[np.random.Generator | None] = [None] * n
        self.threads = min(int(threads), n)
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset all characters (seeding character ``i`` with ``seed + i``), or only those in
        ``options["reset_mask"]``."""
        n = self.num_envs
        if seed is None or isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [None] * n if seed is None else [int(seed) + i for i in range(n)]
            super().reset(seed=None if seed is None else int(seed))
        elif isinstance(seed, Sequence) and len(seed) == n:
            seeds = list(seed)
        else:
            raise ValueError(f"seed must be an int, None or a sequence of {n} seeds, got {seed!r}")
        mask = np.ones(n, dtype=bool) if not options or options.get("reset_mask") is None \
            else np.asarray(options["reset_mask"])
        if mask.shape != (n,) or mask.dtype != bool:
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({n},), "
                             f"got {mask.dtype} {mask.shape}")
        for i in np.flatnonzero(mask).tolist():
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i] = seeding.np_random(seeds[i])[0]
            self._restart(i)
        obs = self.single_env.observation(self._kin, self._k, self._target_dir)
        phase = self.single_env.ref.phase(self._k)
        return obs, {"phase": phase, "_phase": np.ones(n, dtype=bool)}

    def step(self, actions):
        actions = self._check(actions)
        env = self.single_env
        self._k += env.substeps
        self._steps += 1
        self._advance(env.controls(actions, self._k))
        if not np.isfinite(self._kin.qpos).all():
            bad = int(np.flatnonzero(~np.isfinite(self._kin.qpos).all(axis=1))[0])
            raise FloatingPointError(f"simulation diverged in character {bad} at step {self._steps[bad]} "
                                     f"(clip {env.ref.name!r}, physics step {self._k[bad]})")
        out = env.evaluate(self._kin, self._k, self._steps, self._target_dir, self._bad)
        done = out.terminated | out.truncated
        obs, info = self._autoreset(done, out) if done.any() else (out.obs, self._info(out))
        return obs, out.reward, out.terminated, out.truncated, info

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One frame per character (a tuple, like ``SyncVectorEnv``), each beside its ghost."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        if self._renderer is None:
            from mimicgym.envs.mimic.render import MimicRenderer

            self._renderer = MimicRenderer(self.single_env.char, self.single_env.width, self.single_env.height)
        ref = self.single_env.ref
        return tuple(self._renderer.render(data.qpos, ref.state(k)[0]) for data, k in zip(self.datas, self._k.tolist()))

    def close_extras(self, **kwargs: Any) -> None:
        # getattr: Gymnasium 1.2's VectorEnv.__del__ also closes an env whose __init__ raised
        # (bad arguments), before these attributes exist.
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown()
            self._pool = None
        if getattr(self, "_renderer", None) is not None:
            self._renderer.close()
            self._renderer = None
        if hasattr(self, "single_env"):
            self.single_env.close()

    # ------------------------------------------------------------------ internals
    def _check(self, actions) -> np.ndarray:
        actions = np.asarray(actions, dtype=np.float64)
        shape = (self.num_envs, *self.single_action_space.shape)
        if actions.shape != shape:
            raise ValueError(f"actions must have shape {shape}, got {actions.shape}")
        finite = np.isfinite(actions).all(axis=1)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise ValueError(f"actions[{bad}] has non-finite entries: {actions[bad]}")
        return actions

    def _restart(self, i: int) -> None:
        """A new episode for character ``i`` (RSI from its own generator)."""
        data = self.datas[i]
        self._k[i], self._target_dir[i] = self.single_env.restart(data, self._rngs[i])
        self._steps[i] = 0
        self._kin.write(i, data, self._root)

    def _advance(self, ctrl: np.ndarray) -> None:
        """One control step of every character. Threads (the calling one among them) pull the
        next character from one shared iterator: a character's step costs twice another's when
        it has more contacts, so fixed blocks would leave a thread idle. Which thread steps a
        character does not change its result."""
        queue = iter(range(self.num_envs))  # next() on it is atomic under the GIL
        if self._pool is None:
            self._advance_queue(queue, ctrl)
            return
        others = [self._pool.submit(self._advance_queue, queue, ctrl) for _ in range(self.threads - 1)]
        self._advance_queue(queue, ctrl)
        for future in others:
            future.result()

    def _advance_queue(self, queue, ctrl: np.ndarray) -> None:
        env, root = self.single_env, self._root
        check = env.early_termination
        for i in queue:
            data = self.datas[i]
            env.advance(data, ctrl[i])
            self._kin.write(i, data, root)
            self._bad[i] = check and env.bad_contact(data)

    def _info(self, out: Outcome, mask: np.ndarray | None = None) -> dict[str, Any]:
        """The step's info, as ``SyncVectorEnv`` gathers it; ``mask``: only these characters
        (the others' values zero, masks False)."""
        columns = [out.reward_terms, out.imitation_reward[:, None], out.phase[:, None]]
        if out.task_reward is not None:
            columns.append(out.task_reward[:, None])
        values = np.concatenate(columns, axis=1)
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        else:
            values *= mask[:, None]
        info: dict[str, Any] = {"reward_terms": {}, "_reward_terms": mask}
        for j, name in enumerate(TERMS):
            info["reward_terms"][name], info["reward_terms"][f"_{name}"] = values[:, j], mask
        for j, name in enumerate(("imitation_reward", "phase", "task_reward")[:values.shape[1] - len(TERMS)]):
            info[name], info[f"_{name}"] = values[:, len(TERMS) + j], mask
        return info

    def _autoreset(self, done: np.ndarray, out: Outcome) -> tuple[np.ndarray, dict[str, Any]]:
        """Same-step autoreset of the finished characters: (observations, info); the step's info
        for them moves to ``final_info``, as ``SyncVectorEnv`` arranges it."""
        index = np.flatnonzero(done)
        for i in index.tolist():
            self._restart(i)
        obs = out.obs.copy()
        obs[index] = self.single_env.observation(self._kin.rows(index), self._k[index], self._target_dir[index])
        info = self._info(out, ~done) if not done.all() else {}  # no key without a character
        info["phase"], info["_phase"] = self.single_env.ref.phase(self._k), np.ones(self.num_envs, dtype=bool)
        info.update(final_obs=out.obs, _final_obs=done, final_info=self._info(out, done), _final_info=done)
        return obs, info
