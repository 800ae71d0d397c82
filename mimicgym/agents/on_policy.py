"""``OnPolicyAgent``: what A2C and PPO share, the rollout of ``n_steps`` steps in ``n_envs``
parallel environments that each update consumes and then throws away.

A subclass gives its ``Config``, builds its optimizer, and writes ``_train`` (its loss and
update on the finished rollout, read top to bottom in its own module); it says which count
``log_interval`` counts (``_iteration``) and which autoreset modes its update handles.

Autoreset. Gymnasium's vector envs autoreset in NEXT_STEP mode by default: the step that ends
an episode returns the episode's *final* observation as the next obs, and the step after it is
a *reset step* (action ignored, reward 0, the new episode's first obs). So ``V(s_{t+1})`` is
simply the next row of the rollout (the final obs on truncation, zeroed on termination), and
reset steps are marked invalid (``_valid``) for the update to leave out. In SAME_STEP mode
(the batched envs) there are no reset steps; the final observation comes in
``info["final_obs"]`` and the subclass keeps what it needs of it in ``_record_step``.
``num_timesteps`` counts vector steps times ``n_envs``, reset steps included.

A checkpoint holds the unfinished rollout and where every env stands (last observations,
which envs reset next, the episodes' running returns and lengths, and the actions since each
episode began, which a loaded agent replays on its fresh envs), so a stop anywhere resumes as
if never stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from mimicgym.agents.callbacks import MaybeCallback, vector_infos
from mimicgym.agents.checkpoint import as_numpy
from mimicgym.agents.env_state import VectorEnvReplay, not_restored
from mimicgym.agents.policies import ActorCritic, actions_to_env, check_actor_critic_hyperparameters
from mimicgym.agents.torch_agent import PolicyAgent
from mimicgym.errors import ConfigError
from mimicgym.utils.checks import check_env_step, check_positive_int, check_probability
from mimicgym.utils.torch_utils import derive_seed, torch_threads

NEXT_STEP, SAME_STEP = gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.SAME_STEP


def check_on_policy_config(config, check_learning_rate: bool = True) -> None:
    """The checks A2C's and PPO's configs share, by field name (``check_learning_rate``: False
    where the learning rate may be a schedule, checked by the caller)."""
    check_actor_critic_hyperparameters(config, check_learning_rate)
    for name in ("n_steps", "n_envs"):
        check_positive_int(name, getattr(config, name))
    check_probability("gae_lambda", config.gae_lambda)
    if config.shared_actor_critic and (isinstance(config.net_arch, dict) or not config.net_arch):
        raise ConfigError(f"shared_actor_critic needs a non-empty list net_arch, got {config.net_arch!r}")


class OnPolicyAgent(PolicyAgent):
    """``Agent(env_id_or_vector_env, seed=0, device="auto", **hyperparameters)`` for the
    actor-critics that learn from rollouts of their current policy."""

    vectorized = True
    logs_per_episode = False
    _modules = ("policy",)
    _optimizers = ("optimizer",)
    autoreset_modes: ClassVar[tuple[gym.vector.AutoresetMode, ...]] = (NEXT_STEP,)  # what _train handles
    default_log_interval: ClassVar[int] = 1  # iterations between two log dumps
    # Rollout arrays saved with an unfinished rollout, and per-env running sums zeroed with the envs.
    _ROLLOUT: ClassVar[tuple[str, ...]] = ("_obs", "_actions", "_rewards", "_terminated", "_truncated", "_valid")
    _RUNNING: ClassVar[tuple[str, ...]] = ("_episode_return", "_episode_length")

    def __init__(self, env: gym.vector.VectorEnv | str, *, seed: int = 0, device: str | torch.device = "auto",
                 deterministic: bool = False, checkpoint_path: str | Path | None = None, **hyperparameters: Any):
        super().__init__(None, seed=seed, device=device, deterministic=deterministic, checkpoint_path=checkpoint_path,
                         **hyperparameters)
        cfg = self.config
        self.env = self._make_vec_env(env, cfg.n_envs)
        self.observation_space = self.env.single_observation_space
        self.action_space = self.env.single_action_space
        self._same_step = self.env.metadata.get("autoreset_mode", NEXT_STEP) == SAME_STEP
        with self.seeded_init():
            self.policy = ActorCritic(self.observation_space, self.action_space, cfg.net_arch, cfg.activation,
                                      cfg.shared_actor_critic, cfg.log_std_init, cfg.ortho_init,
                                      cfg.normalize_observations).to(self.device)
        self._last_obs: np.ndarray | None = None
        self._last_done = np.zeros(cfg.n_envs, dtype=bool)  # next step is a reset step
        self._episode_return = np.zeros(cfg.n_envs)
        self._episode_length = np.zeros(cfg.n_envs, dtype=np.int64)
        self._env_replay = VectorEnvReplay(self.env)
        # The replay follows NEXT_STEP's reset steps; a SAME_STEP env is reset on resume.
        self._env_replay.exact &= not self._same_step
        self._loaded_envs: Any = False  # from load(), until learn() replays them
        self._rollout_step = 0  # steps of the current rollout already collected
        self._allocate_rollout()

    def _make_vec_env(self, env: Any, n_envs: int) -> gym.vector.VectorEnv:
        """A sync vector env from an id, or a ready VectorEnv checked (``n_envs``, autoreset mode)."""
        name = type(self).__name__
        if isinstance(env, str):
            return gym.make_vec(env, num_envs=n_envs, vectorization_mode="sync")
        if not isinstance(env, gym.vector.VectorEnv):
            raise TypeError(f"{name} needs an env id or a gymnasium VectorEnv, got {type(env).__name__}; "
                            f"wrap a single env with gym.vector.SyncVectorEnv([lambda: env])")
        if env.num_envs != n_envs:
            raise ConfigError(f"n_envs={n_envs} but the given VectorEnv has num_envs={env.num_envs}")
        mode = env.metadata.get("autoreset_mode", NEXT_STEP)
        if mode not in self.autoreset_modes:
            expected = " or ".join(m.name for m in self.autoreset_modes)
            raise ValueError(f"{name} expects a vector env with {expected} autoreset, got {mode}")
        return env

    def _allocate_rollout(self) -> None:
        """Rollout arrays, reused every iteration; on CPU the torch views share their memory."""
        T, N = self.config.n_steps, self.config.n_envs
        obs_space, act_space = self.observation_space, self.action_space
        self._obs = np.zeros((T + 1, N, *obs_space.shape), dtype=obs_space.dtype)
        discrete = isinstance(act_space, gym.spaces.Discrete)
        act_shape = () if discrete else (int(np.prod(act_space.shape)),)
        self._actions = np.zeros((T, N, *act_shape), dtype=np.int64 if discrete else np.float32)
        self._rewards = np.zeros((T, N), dtype=np.float32)
        self._terminated = np.zeros((T, N), dtype=bool)
        self._truncated = np.zeros((T, N), dtype=bool)
        self._valid = np.zeros((T, N), dtype=bool)

    # ----------------------------------------------------------------- the subclass's part
    def _train(self) -> None:
        """The update on the finished rollout (the arrays of ``_ROLLOUT``)."""
        raise NotImplementedError

    def _iteration(self) -> int:
        """The count ``log_interval`` divides: the logs are dumped when it is a multiple."""
        raise NotImplementedError

    def _record_step(self, t: int, info: dict, terminated: np.ndarray, truncated: np.ndarray) -> None:
        """What the subclass keeps of step ``t`` beyond the rollout arrays (PPO: V(final obs))."""

    # ----------------------------------------------------------------- training loop
    def learn(self, total_timesteps: int, *, callback: MaybeCallback = None, log_interval: int | None = None,
              progress_bar: bool = False, reset_num_timesteps: bool = True) -> "OnPolicyAgent":
        """Train for ``total_timesteps`` env steps (rounded up to whole rollouts); dump the logs every
        ``log_interval`` iterations (None: ``default_log_interval``, SB3's for the algorithm).
        ``reset_num_timesteps=False`` continues the counters (and any schedules) of a previous
        ``learn`` or a loaded checkpoint."""
        if log_interval is None:
            log_interval = self.default_log_interval
        with self._learning(total_timesteps, callback, progress_bar, reset_num_timesteps, log_interval) as callback:
            if reset_num_timesteps or self._last_obs is None:
                self._reset_envs()
            elif self._loaded_envs is not False:
                if not self._env_replay.restore(self.env, self._loaded_envs, self._last_done, self._last_obs):
                    if self._env_replay.exact:  # a replayable env that did not come back: say so
                        not_restored("vector env")
                    self._reset_envs()  # batched or remote envs cannot be replayed: new episodes, as documented
                self._loaded_envs = False
            while self.num_timesteps < self._total_timesteps and not self._interrupt:
                if not self._collect_rollout(callback):
                    break
                self._train()
                self._update_progress()
                if log_interval and self._iteration() % log_interval == 0:
                    self._dump_logs()
        return self

    def _reset_envs(self) -> None:
        self._last_obs, _ = self._env_replay.reset(self.env, derive_seed(self.rng))
        self._last_done[:] = False
        for name in self._RUNNING:
            getattr(self, name)[:] = 0
        self._rollout_step, self._loaded_envs = 0, False

    def _collect_rollout(self, callback) -> bool:
        """Fill the rollout arrays up to ``n_steps`` vector steps (going on with a rollout a stop
        left unfinished); False if the callback stopped. The policy's small batches run on one
        torch thread, leaving the other cores to the env."""
        with torch_threads(1):
            return self._collect_steps(callback)

    def _collect_steps(self, callback) -> bool:
        cfg, policy, env, replay = self.config, self.policy, self.env, self._env_replay
        obs_t = torch.from_numpy(self._obs) if self.device.type == "cpu" else None
        if self._rollout_step == 0:
            self._obs[0] = self._last_obs
        if callback is not None:
            callback.on_rollout_start()
        for t in range(self._rollout_step, cfg.n_steps):
            with torch.inference_mode():
                current = obs_t[t] if obs_t is not None else torch.as_tensor(self._obs[t], device=self.device)
                actions = policy.distribution.sample(policy.actor(current), self.torch_rng)
            env_actions = actions_to_env(actions, self.action_space)
            replay.before_step(env, self._last_done)
            next_obs, rewards, terminated, truncated, info = env.step(env_actions)
            if self.check_finite_inputs:
                check_env_step(next_obs, rewards, self.num_timesteps + cfg.n_envs)
            replay.after_step(env_actions, ~self._last_done)
            self._actions[t] = actions.cpu().numpy().reshape(self._actions[t].shape)
            self._rewards[t] = rewards
            self._terminated[t] = terminated
            self._truncated[t] = truncated
            self._valid[t] = ~self._last_done
            self._record_step(t, info, terminated, truncated)
            self._obs[t + 1] = next_obs
            dones = terminated | truncated
            self._track_episodes(rewards, dones)
            self.num_timesteps += cfg.n_envs
            self._rollout_step, self._last_obs = t + 1, self._obs[t + 1]
            if callback is not None and not self._step_callback(
                    callback, new_obs=next_obs, rewards=rewards, dones=dones, infos=vector_infos(info, cfg.n_envs),
                    actions=env_actions):
                return False
        self._rollout_step = 0
        self._last_obs = self._obs[-1].copy()
        if callback is not None:
            callback.on_rollout_end()
        return True

    def _track_episodes(self, rewards: np.ndarray, done: np.ndarray) -> None:
        self._episode_return += rewards
        self._episode_length += ~self._last_done
        for i in np.flatnonzero(done):
            self._finish_episode(self._episode_return[i], self._episode_length[i])
        self._episode_return[done] = 0.0
        self._episode_length[done] = 0
        self._last_done = done & (not self._same_step)  # only NEXT_STEP has reset steps

    # ----------------------------------------------------------------- checkpoint state
    def _extra_state(self, save_replay_buffer: bool) -> dict[str, Any]:
        started = self._last_obs is not None
        return {
            **super()._extra_state(save_replay_buffer),
            "last_obs": np.array(self._last_obs) if started else None,
            "last_done": self._last_done.copy(),
            **{name[1:]: getattr(self, name).copy() for name in self._RUNNING},
            "envs": (self._loaded_envs if self._loaded_envs is not False
                     else self._env_replay.state_dict(self.env) if started else None),
            "rollout_step": self._rollout_step,
            "rollout": {name: getattr(self, name).copy() for name in self._ROLLOUT} if self._rollout_step else None,
        }

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        super()._load_extra_state(extra)
        if extra.get("last_obs") is None:  # saved before learning, or the first format: fresh envs
            return
        extra = as_numpy(extra)
        self._last_obs = extra["last_obs"]
        self._last_done = extra["last_done"].astype(bool)
        for name in self._RUNNING:
            getattr(self, name)[:] = extra[name[1:]]
        self._loaded_envs = extra["envs"]
        self._rollout_step = int(extra["rollout_step"])
        for name, values in (extra["rollout"] or {}).items():
            getattr(self, name)[...] = values
