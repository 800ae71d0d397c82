"""A two-node Ray cluster on this one machine (``ray start --head`` and a second ``ray start
--address=...``, each with one CPU, its own custom resource and temp dir), started and stopped
here: a sweep reaches it through ``--address`` and its trials run on both nodes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mimicgym.runs import RunConfig, run_sweep, seed_sweep

ray = pytest.importorskip("ray")
RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str) -> None:
    out = subprocess.run([RAY, *args], capture_output=True, text=True, timeout=START_TIMEOUT_S)
    if out.returncode != 0:
        raise RuntimeError(f"ray {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def _stop_nodes(dirs: list[str]) -> None:
    """Stop this cluster's processes only (`ray stop` would stop every Ray on the machine, the
    other tests' too): each names its node's temp dir on its command line; the workers end with
    their raylet."""
    def ours() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except (OSError, ValueError):
                continue
            if entry.name.isdigit() and any(d in cmdline for d in dirs):
                pids.append(int(entry.name))
        return pids

    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in ours():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while ours() and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():
    """The head's address and {node id: its custom resource}; both nodes stopped afterwards."""
    port = _free_port()
    # Short paths: Ray's unix sockets live under the temp dir and have a 107-byte limit.
    dirs = [tempfile.mkdtemp(prefix="ray", dir="/tmp") for _ in range(2)]
    # Ray 2.60 turns token authentication on for a local ray.init() (writing ~/.ray/auth_token)
    # and for a head that finds that file, but a joining `ray start` only with RAY_AUTH_MODE=token:
    # so every process of this cluster, this one included, runs in token mode with one token.
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0")
    ray._raylet.Config.initialize("")  # this process reads the mode again
    try:
        _ray("get-auth-token", "--generate")
        _ray("start", "--head", f"--port={port}", "--num-cpus=1", f"--temp-dir={dirs[0]}",
             '--resources={"node_a": 1}', "--include-dashboard=false", "--disable-usage-stats")
        _ray("start", f"--address=127.0.0.1:{port}", "--num-cpus=1", f"--temp-dir={dirs[1]}",
             '--resources={"node_b": 1}', "--disable-usage-stats")
        address = f"127.0.0.1:{port}"
        ray.init(address=address, log_to_driver=False)
        try:
            nodes = {n["NodeID"]: next(k for k in ("node_a", "node_b") if k in n["Resources"])
                     for n in ray.nodes() if n["Alive"]}
        finally:
            ray.shutdown()
        yield address, nodes
    finally:
        _stop_nodes(dirs)
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        ray._raylet.Config.initialize("")


def test_the_cluster_has_two_nodes(cluster):
    _, nodes = cluster
    assert sorted(nodes.values()) == ["node_a", "node_b"]


def test_a_sweeps_trials_run_on_both_nodes(cluster, tmp_path):
    address, nodes = cluster
    # Trials of a few seconds each, so that the two one-CPU nodes run them side by side.
    cfg = RunConfig(agent="sarsa", episodes=8000, eval_episodes=1, eval_max_steps=200, logdir=str(tmp_path))
    result = run_sweep(seed_sweep(cfg, "0-3"), address=address, progress=False)
    assert result.failed == [] and result.ran == 4
    assert sorted(result.nodes) == [f"agent=sarsa s{s}" for s in range(4)]
    assert {nodes[n] for n in result.nodes.values()} == {"node_a", "node_b"}, result.nodes
    assert result.summary["agent=sarsa"]["n"] == 4
    assert not ray.is_initialized()  # the sweep disconnected from the cluster it did not start


def test_a_ppo_run_collects_from_a_worker_on_each_node(cluster):
    """Two rollout workers, placed one per node, and the update here: the samples, and so the
    weights, are those of the local run."""
    import gymnasium as gym
    import torch

    from mimicgym.agents import PPO
    from mimicgym.runs.ray_rollouts import RayVectorEnv

    address, nodes = cluster
    hp = {"n_envs": 4, "n_steps": 32, "batch_size": 64, "n_epochs": 2}
    cfg = RunConfig(env="CartPole-v1", agent="ppo", engine="ray", workers=2, address=address)
    env = RayVectorEnv(cfg, hp["n_envs"], batched=False)
    try:
        assert sorted(nodes[n] for n in env.node_ids()) == ["node_a", "node_b"]
        remote = PPO(env, seed=3, device="cpu", **hp).learn(256)
    finally:
        env.close()
    assert not ray.is_initialized()
    local = PPO(gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync"), seed=3, device="cpu",
                **hp).learn(256)
    a, b = local.policy.state_dict(), remote.policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert remote.num_timesteps == 256 and remote.episode_stats.returns == local.episode_stats.returns
