"""Rollout workers on Ray (``mimicgym train --agent ppo --engine ray --workers N``): the envs of an
on-policy run stepped in N Ray actors, on any node of a cluster, behind one Gymnasium
``VectorEnv``; the agent (the policy's actions and the update) stays in the driver, on its GPU
if it has one.

Worker ``k`` holds ``n_envs / N`` of the run's envs, built as a local run builds them (the
batched imitation env, or a sync vector env), on one CPU; the actors are placed with Ray's
SPREAD strategy, so N workers on N nodes take one node each. Each vector step sends every worker
its rows of the actions and gathers observations, rewards, episode ends and infos in worker
order, so env ``i`` of the whole is env ``i % (n_envs / N)`` of worker ``i // (n_envs / N)``;
``reset(seed=s)`` gives env ``i`` the seed ``s + i``, as Gymnasium's vector envs do. The agent
cannot tell the difference: with one worker a run takes the same samples in the same order as
the local run and ends with the same weights, bit for bit (a test), and N workers give a
reproducible run too.

This is central inference (as SEED RL has it): one round trip per vector step and no copy of the
policy in the workers, so nothing about the algorithm changes; the price is the latency of a
round trip per step, small beside the physics of a batch of imitation characters.

Infos: each worker's vector-env infos are merged into one in worker order (``final_info`` and
``final_obs`` included), so callbacks (the imitation reward terms, evaluation, checkpoints) get
the keys a local run gives them. Each worker takes one CPU of the cluster: more workers than
the cluster has CPUs are refused (their actors would wait for ever), and an env a worker cannot
build is its ``ConfigError``, not a Ray traceback.

Resume: weights, optimiser, RNGs, counters and logs come back exactly, at any checkpoint; the
workers' envs cannot be replayed from the driver, so a resumed ``--engine ray`` run starts new
episodes (as a local run on the batched env does), and a rollout that a stop left unfinished is
collected again from them (its steps stay counted). A resumed run is thus exact up to the
checkpoint and a valid, reproducible continuation after it, not the run that never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv

from mimicgym.errors import ConfigError, MimicgymError
from mimicgym.runs.config import RunConfig, check_workers_divide


class EnvWorker:
    """A Ray actor (``ray.remote(EnvWorker)``) holding one vector env of the run."""

    def __init__(self, values: dict[str, Any], num_envs: int, batched: bool):
        import mimicgym  # noqa: F401  (registers the ids in this process)
        from mimicgym.runs.envs import make_vec_env

        # A user error (an env keyword the env does not take) is kept for describe() to raise:
        # an exception in an actor's __init__ reaches the driver only as a Ray traceback.
        self.env, self.error = None, None
        try:
            self.env = make_vec_env(RunConfig(**values), num_envs, batched)
        except MimicgymError as e:
            self.error = e

    def describe(self) -> tuple[gym.Space, gym.Space, dict[str, Any]]:
        if self.error is not None:
            raise self.error
        return self.env.single_observation_space, self.env.single_action_space, dict(self.env.metadata)

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def reset(self, seed, options):
        return self.env.reset(seed=seed, options=options)

    def step(self, actions):
        return self.env.step(actions)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


def merge_infos(infos: Sequence[dict[str, Any]], sizes: Sequence[int]) -> dict[str, Any]:
    """Vector-env infos of consecutive blocks of envs as one: each key's array concatenated in
    block order; a block without the key gets zeros (its mask ``_key`` False), as a vector env
    leaves the envs that did not report it."""
    keys = list(dict.fromkeys(k for info in infos for k in info))
    out: dict[str, Any] = {}
    for key in keys:
        present = [info[key] for info in infos if key in info]
        if isinstance(present[0], dict):
            out[key] = merge_infos([info.get(key, {}) for info in infos], sizes)
            continue
        like = np.asarray(present[0])
        parts = [np.asarray(info[key]) if key in info else np.zeros((n, *like.shape[1:]), dtype=like.dtype)
                 for info, n in zip(infos, sizes)]
        out[key] = np.concatenate(parts)
    return out


class RayVectorEnv(VectorEnv):
    """``num_envs`` envs of a run in ``workers`` Ray actors (see the module docstring)."""

    def __init__(self, cfg: RunConfig, num_envs: int, batched: bool):
        from mimicgym.runs.ray_session import connect_ray, import_ray

        workers = cfg.workers
        check_workers_divide(workers, num_envs)
        ray, _ = import_ray()
        self._ray, self._actors = ray, []
        self._started = connect_ray(cfg.address)
        self.num_envs, self.workers = num_envs, workers
        self._size = num_envs // workers
        try:
            described, self.nodes = self._start_workers(cfg, batched)
        except BaseException:
            self.close_extras()  # no actors, and no Ray this call started, left behind
            raise
        obs_space, act_space, metadata = described[0]
        self.single_observation_space, self.single_action_space = obs_space, act_space
        self.observation_space = gym.vector.utils.batch_space(obs_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(act_space, num_envs)
        self.metadata = metadata

    def _start_workers(self, cfg: RunConfig, batched: bool) -> tuple[list, list[str]]:
        """The actors, each on one CPU; what each describes (spaces, metadata) and its node."""
        ray, workers = self._ray, self.workers
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < workers:  # the actors beyond the CPUs would wait for ever
            raise ConfigError(f"--workers {workers}: each rollout worker takes one CPU and the Ray cluster has "
                              f"{cpus:g}")
        local = dataclasses.asdict(dataclasses.replace(cfg, engine="local", workers=1, address=None, threads=1))
        actor = ray.remote(num_cpus=1)(EnvWorker).options(scheduling_strategy="SPREAD")
        self._actors = [actor.remote(local, self._size, batched) for _ in range(workers)]
        try:
            described = ray.get([a.describe.remote() for a in self._actors])
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, MimicgymError):  # the worker's own words, not Ray's traceback
                raise e.cause from None
            raise
        return described, self.node_ids()

    def node_ids(self) -> list[str]:
        """The Ray node of each worker, in worker order (``nodes`` keeps those of the start)."""
        return self._ray.get([a.node_id.remote() for a in self._actors])

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        n = self._size
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + k * n for k in range(self.workers)]
            super().reset(seed=None if seed is None else int(seed))
        else:
            seeds = [list(seed[k * n:(k + 1) * n]) for k in range(self.workers)]
        mask = None if not options else options.get("reset_mask")
        calls = []
        for k, actor in enumerate(self._actors):
            opts = options if mask is None else {**options, "reset_mask": np.asarray(mask)[k * n:(k + 1) * n]}
            calls.append(actor.reset.remote(seeds[k], opts))
        results = self._ray.get(calls)
        return np.concatenate([r[0] for r in results]), merge_infos([r[1] for r in results], [n] * self.workers)

    def step(self, actions):
        actions = np.asarray(actions)
        n = self._size
        results = self._ray.get([a.step.remote(actions[k * n:(k + 1) * n]) for k, a in enumerate(self._actors)])
        obs, rewards, terminated, truncated, infos = zip(*results)
        return (np.concatenate(obs), np.concatenate(rewards), np.concatenate(terminated), np.concatenate(truncated),
                merge_infos(infos, [n] * self.workers))

    def close_extras(self, **kwargs: Any) -> None:
        actors, self._actors = self._actors, []
        try:
            with contextlib.suppress(self._ray.exceptions.RayError):  # an actor that died: nothing to close
                self._ray.get([a.close.remote() for a in actors])
        finally:
            for a in actors:
                self._ray.kill(a)
            if self._started:
                self._started = False
                self._ray.shutdown()
