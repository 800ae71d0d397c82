"""The envs of a run: built from its config, with errors that name the env and the keyword."""

from __future__ import annotations

import functools
import multiprocessing

import gymnasium as gym

from mimicgym.errors import ConfigError
from mimicgym.runs.config import RunConfig
from mimicgym.utils.signals import ignore_interrupts_in_worker


def env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of ``env_id``; unknown ids get Gymnasium's own suggestion."""
    try:
        return gym.spec(env_id)
    except gym.error.Error as e:
        raise ConfigError(f"env {env_id!r}: {e}") from None


def is_imitation_env(env_id: str) -> bool:
    """Whether ``env_id`` is one of the motion-imitation envs (they report reward terms)."""
    entry = env_spec(env_id).entry_point
    return isinstance(entry, str) and entry.startswith("mimicgym.envs.mimic")


def wrap_observation(env: gym.Env, wrapper: str | None) -> gym.Env:
    if wrapper is None:
        return env
    from mimicgym.envs import wrappers

    return wrappers.OneHotObservation(env) if wrapper == "onehot" else wrappers.ImageObservation(env)


def make_env(cfg: RunConfig, evaluation: bool = False, **extra_kwargs) -> gym.Env:
    """One env as the run trains on it, or with ``evaluation`` as it is evaluated on
    (``cfg.eval_env_kwargs`` over its keywords); ``extra_kwargs``: e.g. ``render_mode``."""
    env_spec(cfg.env)
    kwargs = {**cfg.env_kwargs, **cfg.eval_env_kwargs} if evaluation else cfg.env_kwargs
    try:
        env = gym.make(cfg.env, **{**kwargs, **extra_kwargs})
    except (TypeError, ValueError) as e:  # a keyword the env does not take, or a bad value
        raise ConfigError(f"env {cfg.env!r} with keywords {kwargs}: {e}") from None
    return wrap_observation(env, cfg.wrapper)


def agent_env_layout(agent_cls, cfg: RunConfig, hyperparameters: dict) -> tuple[int, bool]:
    """How many envs a vectorised agent of ours steps (``n_envs``) and whether they are the
    batched imitation env (where the agent takes its same-step autoreset) or a sync VectorEnv."""
    n_envs = hyperparameters.get("n_envs", agent_cls.Config().n_envs)
    batched = (is_imitation_env(cfg.env) and cfg.wrapper is None
               and gym.vector.AutoresetMode.SAME_STEP in getattr(agent_cls, "autoreset_modes", ()))
    return n_envs, batched


def make_agent_env(agent_cls, cfg: RunConfig, hyperparameters: dict) -> gym.Env | gym.vector.VectorEnv:
    """The env one of our agents trains on in this process: for vectorised ones, ``n_envs``
    imitation characters in the batched env (physics in ``cfg.threads`` threads; same-step
    autoreset) where the agent takes that mode, a sync VectorEnv of ``n_envs`` otherwise
    (``engine="ray"`` splits the same envs over Ray actors: ``mimicgym.runs.ray_rollouts``)."""
    if not agent_cls.vectorized:
        return make_env(cfg)
    return make_vec_env(cfg, *agent_env_layout(agent_cls, cfg, hyperparameters))


def make_vec_env(cfg: RunConfig, n_envs: int, batched: bool) -> gym.vector.VectorEnv:
    """``n_envs`` envs of the run in one process: the batched imitation env, or a sync VectorEnv."""
    if batched:
        try:
            return gym.make_vec(cfg.env, num_envs=n_envs, vectorization_mode="vector_entry_point",
                                threads=min(cfg.threads, n_envs), **cfg.env_kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"env {cfg.env!r} with keywords {cfg.env_kwargs}: {e}") from None
    return gym.vector.SyncVectorEnv([lambda: make_env(cfg) for _ in range(n_envs)])


def _worker_env(cfg: RunConfig) -> gym.Env:
    if multiprocessing.parent_process() is not None:  # inside a SubprocVecEnv worker
        ignore_interrupts_in_worker()
    return make_env(cfg)


def make_sb3_vec_env(cfg: RunConfig, seed: int, n_envs: int):
    """stable-baselines3's vector env of ``n_envs`` Monitor-wrapped envs, seeded from ``seed``;
    subprocess workers leave Ctrl-C to the parent, which stops the run cleanly."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    make_env(cfg).close()  # bad keywords fail here, in this process, with a clear message
    return make_vec_env(functools.partial(_worker_env, cfg), n_envs=n_envs, seed=seed,
                        vec_env_cls=SubprocVecEnv if cfg.subproc and n_envs > 1 else DummyVecEnv)
