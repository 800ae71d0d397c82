"""One training run, as the CLI and the scripts start it: make env, train, save, evaluate, plot.

A run directory holds everything needed to understand and repeat the run: the resolved
config, package versions and git commit (``config.json``), TensorBoard event files,
``progress.json`` (every logged scalar), the saved agent, ``eval.json`` and PNG plots.
Agents are our own (``q_learning``, ``dqn``...) or stable-baselines3's (``sb3:PPO``).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import json
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from mimicgym.utils.io import atomic_write

SB3_PREFIX = "sb3:"
OBSERVATION_WRAPPERS = ("onehot", "image")


@dataclass
class RunConfig:
    env: str = "mimicgym/CliffWalking-v0"
    agent: str = "q_learning"
    timesteps: int | None = None  # for sample-based and deep agents
    episodes: int | None = None  # tabular sample-based agents may count episodes instead
    seed: int = 0
    logdir: str = "runs"
    run_name: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    wrapper: str | None = None  # observation wrapper for deep agents: "onehot" | "image"
    n_envs: int = 1  # parallel envs for stable-baselines3 algorithms
    subproc: bool = False  # SubprocVecEnv instead of DummyVecEnv (sb3)
    # Observation normalisation: VecNormalize (observations and rewards) for sb3, the
    # network's running statistics (``normalize_observations``) for our policy-gradient agents.
    normalize: bool = False
    device: str = "auto"
    eval_episodes: int = 20
    checkpoint_freq: int = 0  # steps between checkpoints (0: only at the end)
    resume: str | None = None  # a saved agent to continue training from
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.wrapper is not None and self.wrapper not in OBSERVATION_WRAPPERS:
            raise ValueError(f"wrapper must be one of {OBSERVATION_WRAPPERS}, got {self.wrapper!r}")
        for name in ("timesteps", "episodes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {self.n_envs!r}")
        if self.eval_episodes < 0:
            raise ValueError(f"eval_episodes must be >= 0, got {self.eval_episodes!r}")

    @property
    def is_sb3(self) -> bool:
        return self.agent.startswith(SB3_PREFIX)


@dataclass
class RunResult:
    run_dir: Path
    model_path: Path
    eval_returns: list[float]
    agent: Any

    @property
    def eval_mean(self) -> float:
        return float(np.mean(self.eval_returns)) if self.eval_returns else float("nan")


# --------------------------------------------------------------------------- environment


def make_env(cfg: RunConfig, render_mode: str | None = None) -> gym.Env:
    kwargs = dict(cfg.env_kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    env = gym.make(cfg.env, **kwargs)
    return wrap_observation(env, cfg.wrapper)


def make_agent_env(agent_cls, cfg: RunConfig) -> gym.Env | gym.vector.VectorEnv:
    """The env an agent trains on: a sync VectorEnv of ``n_envs`` copies for vectorised agents."""
    if not agent_cls.vectorized:
        return make_env(cfg)
    n_envs = cfg.hyperparameters.get("n_envs", agent_cls.Config().n_envs)
    return gym.vector.SyncVectorEnv([lambda: make_env(cfg) for _ in range(n_envs)])


def wrap_observation(env: gym.Env, wrapper: str | None) -> gym.Env:
    if wrapper is None:
        return env
    from mimicgym.envs import wrappers

    return wrappers.OneHotObservation(env) if wrapper == "onehot" else wrappers.ImageObservation(env)


# --------------------------------------------------------------------------- run directory


def new_run_dir(cfg: RunConfig) -> Path:
    name = cfg.run_name or f"{cfg.agent.replace(':', '_')}_{cfg.env.split('/')[-1]}_s{cfg.seed}"
    root = Path(cfg.logdir)
    run_dir, n = root / name, 1
    while run_dir.exists():
        n += 1
        run_dir = root / f"{name}_{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def package_versions() -> dict[str, str | None]:
    names = ("mimicgym", "gymnasium", "stable-baselines3", "torch", "numpy", "mujoco", "tensorboard")
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The commit of the checkout the package runs from (with '-dirty'), if any."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def write_json(path: Path, payload: Any) -> None:
    with atomic_write(path, "w") as f:
        json.dump(payload, f, indent=2, default=str)


def write_run_config(run_dir: Path, cfg: RunConfig, agent_class: str, hyperparameters: dict) -> None:
    """``config.json``: what was asked, what the agent resolved it to, and what ran it."""
    write_json(run_dir / "config.json", {
        "config": dataclasses.asdict(cfg),
        "agent_class": agent_class,
        "hyperparameters": hyperparameters,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })


# --------------------------------------------------------------------------- training


def _accepted(func, candidates: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``candidates`` that ``func`` names explicitly (agents differ in what
    learn() counts; ``**hyperparameters`` catch-alls must not swallow run options)."""
    params = inspect.signature(func).parameters
    return {k: v for k, v in candidates.items() if k in params}


def train(cfg: RunConfig) -> RunResult:
    """Train one agent as ``cfg`` says; write the run directory; return the result."""
    if cfg.is_sb3:
        from mimicgym.sb3_runner import train_sb3

        return train_sb3(cfg)

    from mimicgym.agents import Logger, get_agent_class

    agent_cls = get_agent_class(cfg.agent)
    hyperparameters = dict(cfg.hyperparameters)
    if cfg.normalize:
        fields = getattr(getattr(agent_cls, "Config", None), "__dataclass_fields__", {})
        if "normalize_observations" not in fields:
            raise ValueError(f"--normalize: agent {cfg.agent!r} has no observation normalisation "
                             f"(a2c and reinforce have; sb3 agents use VecNormalize)")
        hyperparameters["normalize_observations"] = True
    env = make_agent_env(agent_cls, cfg)
    if cfg.resume:
        agent = agent_cls.load(cfg.resume, env=env)
    else:
        extra = _accepted(agent_cls.__init__, {"device": cfg.device})
        agent = agent_cls(env, seed=cfg.seed, **extra, **hyperparameters)
    budget = {"total_timesteps": cfg.timesteps, "total_episodes": cfg.episodes}
    learn_kwargs = _accepted(agent.learn, {
        **{k: v for k, v in budget.items() if v is not None},
        "progress_bar": cfg.progress_bar,
        "reset_num_timesteps": cfg.resume is None,
    })
    if is_imitation_env(cfg.env) and hasattr(agent, "last_info"):
        from mimicgym.envs.mimic.callbacks import log_reward_terms

        learn_kwargs["callback"] = log_reward_terms  # imitation/<term> in TensorBoard
    if "total_timesteps" in inspect.signature(agent.learn).parameters and not (
        budget.keys() & learn_kwargs.keys()
    ):
        raise ValueError(f"agent {cfg.agent!r} learns from samples: give timesteps or episodes")
    run_dir = new_run_dir(cfg)
    write_run_config(run_dir, cfg, agent_cls.__name__, agent.hyperparameters)
    logger = Logger(run_dir, hparams={"agent": cfg.agent, "env": cfg.env, "seed": cfg.seed,
                                      **agent.hyperparameters})
    agent.set_logger(logger)
    model_path = run_dir / ("model.npz" if _is_tabular(agent) else "model.pt")
    try:
        agent.learn(**learn_kwargs)
    except KeyboardInterrupt:
        agent.save(model_path)
        print(f"\ninterrupted: agent saved to {model_path}; continue with --resume {model_path}")
        logger.close()
        raise
    agent.save(model_path)
    returns = evaluate(agent, cfg, cfg.eval_episodes)
    summary = _eval_summary(returns)
    write_json(run_dir / "eval.json", summary)
    logger.close(final_metrics={"eval/mean_reward": summary["mean_reward"]} if returns else None)
    write_run_plots(run_dir, agent, env, logger.history)
    env.close()
    return RunResult(run_dir, model_path, returns, agent)


def is_imitation_env(env_id: str) -> bool:
    """Whether ``env_id`` is one of the motion-imitation envs (they report reward terms)."""
    spec = gym.spec(env_id)
    return isinstance(spec.entry_point, str) and spec.entry_point.startswith("mimicgym.envs.mimic")


def _is_tabular(agent) -> bool:
    from mimicgym.agents.base import TabularAgent

    return isinstance(agent, TabularAgent)


def evaluate(agent, cfg: RunConfig, n_episodes: int) -> list[float]:
    """Deterministic evaluation episodes through stable-baselines3's ``evaluate_policy``."""
    if n_episodes == 0:
        return []
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec = DummyVecEnv([lambda: Monitor(make_env(cfg))])
    vec.seed(cfg.seed + 10_000)  # evaluation episodes never share seeds with training
    returns, _ = evaluate_policy(agent, vec, n_eval_episodes=n_episodes, deterministic=True,
                                 return_episode_rewards=True)
    vec.close()
    return [float(r) for r in returns]


def _eval_summary(returns: list[float]) -> dict[str, Any]:
    return {
        "episodes": len(returns),
        "mean_reward": float(np.mean(returns)) if returns else None,
        "std_reward": float(np.std(returns)) if returns else None,
        "returns": returns,
    }


# --------------------------------------------------------------------------- plots


def occupiable_states(model) -> np.ndarray:
    """(S,) True where the agent can be: start states and successors of other states.

    Walls and cliff cells (entering one sends the agent back to start) never are; their
    values mean nothing, so plots leave them blank.
    """
    states = np.arange(model.n_states)[:, None, None]
    moved_in = model.next_states[(model.probs > 0) & (model.next_states != states)]
    occupiable = model.initial > 0
    occupiable[moved_in] = True
    return occupiable


def write_run_plots(run_dir: Path, agent, env: gym.Env, history: dict) -> list[Path]:
    from mimicgym.plots import plot_learning_curves, plot_value_heatmap

    written = []
    stats = getattr(agent, "episode_stats", None)
    if stats is not None and stats.returns:
        episodes = np.arange(1, len(stats.returns) + 1)
        written.append(plot_learning_curves(
            {agent.__class__.__name__: (episodes, stats.returns)},
            run_dir / "learning_curve.png", xlabel="episode", ylabel="episode return",
            title=f"{agent.__class__.__name__} on {env.spec.id if env.spec else env}",
            smooth=max(1, len(stats.returns) // 50)))
    elif "rollout/ep_rew_mean" in history:
        steps, values = zip(*history["rollout/ep_rew_mean"])
        written.append(plot_learning_curves({agent.__class__.__name__: (steps, values)},
                                            run_dir / "learning_curve.png",
                                            xlabel="timesteps", ylabel="mean episode return"))
    base = env.unwrapped
    model = base.model() if hasattr(base, "model") else None
    values = getattr(agent, "values", None)
    q_values = getattr(agent, "q_values", None)
    if model is not None and model.grid_shape is not None and (values is not None or q_values is not None):
        v = np.asarray(values if values is not None else q_values.max(axis=1))
        q = q_values if q_values is not None else model.q_from_v(v, getattr(agent.config, "gamma", 1.0))
        written.append(plot_value_heatmap(
            v, model.grid_shape, run_dir / "values.png", greedy_actions=np.argmax(q, axis=1),
            moves=getattr(base, "moves", None), mask=model.terminal | ~occupiable_states(model),
            title=f"{agent.__class__.__name__}: V and greedy policy"))
    return written
