"""RLlib's algorithms as run agents (``--agent rllib:PPO``, any online algorithm of RLlib's
registry): the hyperparameters checked against the algorithm's ``training()`` options, an
algorithm built on the run's env (new API stack, torch), trained until the run's budget, its
results logged under our keys, and its policy saved as weights (``mimicgym.runs.rllib_policy``).

RLlib comes with the ``rllib`` extra, which pins Gymnasium (``INSTALL_HINT``). Sampling stays
cheap by default: one local env runner in this process (``num_env_runners=0``) stepping
``--n-envs`` envs, the learner beside it; ``--engine ray --workers N`` gives RLlib N remote env
runners (Ray actors, ``n_envs / N`` envs each) instead, on a cluster with ``--address``. RLlib
needs a Ray: an embedded local one is started and shut down with the learner unless this
process already has one.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym

from mimicgym.errors import ConfigError
from mimicgym.runs.config import RunConfig, check_workers_divide
from mimicgym.runs.envs import is_imitation_env, make_env
from mimicgym.runs.options import check_range, coerce
from mimicgym.runs.rllib_policy import (
    RllibPolicy,
    algorithm_class,
    algorithm_name,
    checkpoint_payload,
    model_config_dict,
)

MODEL_CONFIG = "model_config"  # --set model_config={fcnet_hiddens=[64, 64]}: the RLModule's, not training()'s
# training() options a run does not take from --set: classes and callables, or the old API stack's.
_NOT_SETTABLE = {"learner_class", "learner_connector", "add_default_connectors_to_learner_pipeline",
                 "learner_config_dict", "model", "optimizer", "lr_schedule", "vf_share_layers"}
# Simple bounds RLlib does not check itself (a gamma of 1.5 trains on, to NaN).
_RANGES: dict[str, tuple[float, float, bool]] = {  # name -> (low, high, low excluded)
    "gamma": (0.0, 1.0, False), "lambda_": (0.0, 1.0, False), "clip_param": (0.0, math.inf, True),
    "train_batch_size_per_learner": (1, math.inf, False), "minibatch_size": (1, math.inf, False),
    "num_epochs": (1, math.inf, False), "entropy_coeff": (0.0, math.inf, False),
    "vf_loss_coeff": (0.0, math.inf, False), "grad_clip": (0.0, math.inf, True),
}
# PPO on imitation envs: the DeepMimic-like settings of our PPO and SB3's (mimicgym.runs.imitation),
# in RLlib's names; rollouts of 4,096 samples as ours. --set overrides any of them.
DEEPMIMIC_RLLIB_PPO: dict[str, Any] = {
    "lr": 1e-4, "gamma": 0.95, "lambda_": 0.95, "clip_param": 0.2, "train_batch_size_per_learner": 4096,
    "minibatch_size": 512, "num_epochs": 5, MODEL_CONFIG: {"fcnet_hiddens": [512, 256]},
}
# RLlib's learner results (per module) -> our (stable-baselines3's) TensorBoard keys.
LEARNER_KEYS = {
    "total_loss": "train/loss", "policy_loss": "train/policy_loss", "vf_loss": "train/value_loss",
    "entropy": "train/entropy", "mean_kl_loss": "train/approx_kl", "curr_kl_coeff": "train/kl_coef",
    "vf_explained_var": "train/explained_variance", "default_optimizer_learning_rate": "train/learning_rate",
    "qf_loss": "train/qf_loss", "qf_mean": "train/q_mean", "td_error_mean": "train/td_error",
    "actor_loss": "train/actor_loss", "critic_loss": "train/critic_loss", "alpha_loss": "train/ent_coef_loss",
    "alpha_value": "train/ent_coef",
}


def training_options(config) -> dict[str, Any]:
    """Name -> default value of each option of the algorithm config's ``training()`` (its own
    and its parents'), without those a run does not take from ``--set``."""
    from ray.rllib.utils.from_config import NotProvided

    options: dict[str, Any] = {}
    for klass in type(config).__mro__:
        method = klass.__dict__.get("training")
        if method is None:
            continue
        for name, p in inspect.signature(method).parameters.items():
            # Options default to NotProvided; deprecated ones to a marker value.
            if (p.kind is p.KEYWORD_ONLY and p.default is NotProvided and name not in _NOT_SETTABLE
                    and hasattr(config, name)):
                options.setdefault(name, getattr(config, name))
    return options


def _annotation(default: Any, name: str) -> str:
    """The type ``--set`` must give for an option, from its default (as sb3.py does)."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, float):
        return "float | list" if name in ("lr", "entropy_coeff") else "float"  # or a schedule
    if isinstance(default, int):
        return "int"
    if isinstance(default, str):
        return "str"
    if isinstance(default, (list, tuple)):
        return "list"
    return "Any"  # None or a dict: RLlib's validation decides


def check_rllib_hyperparameters(agent: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked against the algorithm's ``training()`` options (names, the default's
    type, the simple ranges above) and ``model_config`` against RLlib's ``DefaultModelConfig``."""
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    algo = algorithm_class(agent)
    name = algorithm_name(agent)
    options = training_options(algo.get_default_config())
    what = f"rllib:{name} hyperparameter "
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key == MODEL_CONFIG:
            checked[key] = _check_model_config(value, DefaultModelConfig(), f"rllib:{name} {MODEL_CONFIG}")
            continue
        if key not in options:
            raise ConfigError(f"rllib:{name} has no training option {key!r} (got {key}={value!r}); "
                              f"known: {', '.join(sorted(options))}, {MODEL_CONFIG}")
        value = coerce(key, value, _annotation(options[key], key), what)
        if key in _RANGES and isinstance(value, (int, float)):
            low, high, low_open = _RANGES[key]
            check_range(key, value, low, high, low_open=low_open, what=what)
        checked[key] = value
    return checked


def _check_model_config(value: Any, defaults, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a table (e.g. {{fcnet_hiddens=[64, 64]}}), got {value!r}")
    known = model_config_dict(defaults)
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigError(f"{what} has no key {', '.join(map(repr, unknown))} (got {value!r}); "
                          f"known: {', '.join(sorted(known))}")
    return {k: coerce(k, v, _annotation(known[k], k), f"{what} ") for k, v in value.items()}


def resolve_hyperparameters(cfg: RunConfig) -> dict[str, Any]:
    """The run's checked hyperparameters, over the imitation defaults where they apply."""
    hyperparameters = check_rllib_hyperparameters(cfg.agent, cfg.hyperparameters)
    if algorithm_name(cfg.agent) == "PPO" and is_imitation_env(cfg.env):
        model = {**DEEPMIMIC_RLLIB_PPO[MODEL_CONFIG], **hyperparameters.get(MODEL_CONFIG, {})}
        hyperparameters = {**DEEPMIMIC_RLLIB_PPO, **hyperparameters, MODEL_CONFIG: model}
    return hyperparameters


# -- imitation reward terms, logged by RLlib's env runner (mimicgym.runs.imitation does it for ours)
def _on_imitation_step(*, episode, metrics_logger, **kwargs) -> None:
    """Each step's ``info["reward_terms"]`` as ``imitation/<term>``: means over the iteration's steps."""
    from mimicgym.envs.mimic.reward import TERMS

    info = episode.get_infos(-1)
    terms = info.get("reward_terms") if isinstance(info, dict) else None
    if terms is None:
        return
    for name in TERMS:
        metrics_logger.log_value(f"imitation/{name}", float(terms[name]), reduce="mean")
    metrics_logger.log_value("imitation/imitation_reward", float(info["imitation_reward"]), reduce="mean")
    # custom_data goes on with the episode across the chunks RLlib cuts it into
    episode.custom_data["imitation_return"] = (episode.custom_data.get("imitation_return", 0.0)
                                               + float(info["imitation_reward"]))


def _on_imitation_episode_end(*, episode, metrics_logger, max_return: float, **kwargs) -> None:
    """``imitation/normalised_return``: the episode's imitation return over the most one earns."""
    metrics_logger.log_value("imitation/normalised_return",
                             episode.custom_data.get("imitation_return", 0.0) / max_return, reduce="mean")


def _run_env(cfg: RunConfig, env_context=None) -> gym.Env:
    """RLlib's env creator: the run's env with its keywords and wrapper (``env_context`` unused)."""
    return make_env(cfg)


class _CallbackHost:
    """What the run layer's stable-baselines3 callbacks (periodic evaluation and checkpoints)
    read of a model; they run once per RLlib iteration."""

    def __init__(self, learner: RllibLearner, logger):
        self.learner, self.logger = learner, logger

    @property
    def num_timesteps(self) -> int:
        return self.learner.progress["timesteps"]

    def get_env(self):
        return None


class RllibLearner:
    """An RLlib algorithm (``rllib:PPO``, ``rllib:DQN``...) behind the run layer's learner interface."""

    model_file = "model.pt"
    units = ("timesteps",)
    normalize_obs = None  # RLlib's connectors see raw observations; so does evaluation
    env = None  # the envs live in RLlib's env runner

    def __init__(self, cfg: RunConfig, checkpoint: Path | None = None):
        name = algorithm_name(cfg.agent)  # RLlib installed, the name known
        if checkpoint is not None:
            raise ConfigError(f"rllib:{name} runs cannot be continued: model.pt keeps the policy's weights, not "
                              f"RLlib's optimiser and sampler state; start a new run (`mimicgym eval RUN` "
                              f"evaluates this one)")
        for given, why in ((cfg.episodes is not None, "counts timesteps, not episodes"),
                           (cfg.timesteps is None, "needs timesteps (--timesteps)"),
                           (cfg.normalize, "has no --normalize (RLlib's observation filters are not saved)"),
                           (cfg.subproc, "samples with RLlib's env runner, not --subproc"),
                           (cfg.device not in ("auto", "cpu"),
                            f"trains on the CPU here (device {cfg.device!r} is not supported)")):
            if given:
                raise ConfigError(f"agent {cfg.agent!r} {why}")
        if cfg.engine == "ray":
            check_workers_divide(cfg.workers, cfg.n_envs, holder="env runner")
        self.cfg = cfg
        self.hyperparameters = resolve_hyperparameters(cfg)
        probe = make_env(cfg)  # bad env keywords fail here, before Ray starts
        try:
            if isinstance(probe.observation_space, gym.spaces.Discrete) and cfg.wrapper is None:
                # RLlib's default encoders take Box observations: gridworld states go one-hot, as
                # our deep agents take them, and config.json records the wrapper for eval.
                cfg.wrapper = "onehot"
            self._action_space = probe.action_space  # the env runners may all be remote
            max_return = None
            if is_imitation_env(cfg.env):
                from mimicgym.runs.imitation import max_imitation_return

                max_return = max_imitation_return(probe)
        finally:
            probe.close()
        self.agent_class = f"ray.rllib.{name}"
        self._timesteps, self._episodes = 0, 0
        self._owns_ray = False
        self.algo = None
        try:
            self._build(name, max_return)
        except BaseException:
            self.close()
            raise

    def _build(self, name: str, max_return: float | None) -> None:
        runners = self.cfg.workers if self.cfg.engine == "ray" else 0  # 0: sampling in this process
        from ray.tune import register_env

        from mimicgym.runs.ray_session import connect_ray

        cfg = self.cfg
        self._owns_ray = connect_ray(cfg.address)
        env_name = f"mimicgym-run-{uuid.uuid4().hex[:12]}"
        register_env(env_name, functools.partial(_run_env, cfg))
        hyperparameters = dict(self.hyperparameters)
        model_config = hyperparameters.pop(MODEL_CONFIG, None)
        config = (algorithm_class(cfg.agent).get_default_config()
                  .framework("torch")
                  .environment(env=env_name)
                  .env_runners(num_env_runners=runners, num_envs_per_env_runner=cfg.n_envs // max(runners, 1))
                  .learners(num_learners=0, num_gpus_per_learner=0)
                  .debugging(seed=cfg.seed))
        if model_config:
            config = config.rl_module(model_config=model_config)
        if max_return is not None:
            config = config.callbacks(on_episode_step=_on_imitation_step,
                                      on_episode_end=functools.partial(_on_imitation_episode_end,
                                                                       max_return=max_return))
        try:
            config = config.training(**hyperparameters)
            with warnings.catch_warnings():  # RLlib registers its env id anew for each algorithm
                warnings.filterwarnings("ignore", message=".*rllib-single-agent-env-v0 already in registry")
                self.algo = config.build_algo()
        except (ValueError, TypeError, KeyError, NotImplementedError) as e:
            # RLlib's validation (e.g. a minibatch larger than the batch) and the spaces its
            # default module cannot take, said as RLlib says them.
            raise ConfigError(f"rllib:{name} on {cfg.env} with {self.hyperparameters}: "
                              f"{type(e).__name__}: {str(e).strip()[:500]}") from None
        self.config = config
        import torch  # RLlib's learner here is torch's; small networks train fastest on few threads

        torch.set_num_threads(cfg.threads)

    # -- the run layer's learner interface
    @property
    def model(self) -> RllibPolicy:
        """The env runner's module (synchronised with the learner after each update)."""
        return RllibPolicy(self.algo.get_module(), self._action_space, self.config.normalize_actions,
                           self.config.clip_actions)

    @property
    def progress(self) -> dict[str, int]:
        return {"timesteps": self._timesteps, "episodes": self._episodes}

    def set_logger(self, logger) -> None:
        self.logger = logger

    def learn(self, budget: dict[str, int], callbacks: list, resumed: bool) -> None:
        from mimicgym.runs.imitation import RewardTermsCallback
        from mimicgym.utils.progress import ProgressBar
        from mimicgym.utils.signals import interrupt_requests

        # The reward terms come from RLlib's env runner (_on_imitation_step), not from SB3's locals.
        callbacks = [c for c in callbacks if not isinstance(c, RewardTermsCallback)]
        host = _CallbackHost(self, self.logger)
        for callback in callbacks:
            callback.init_callback(host)
            callback.on_training_start(locals(), globals())
        target = self._timesteps + budget["timesteps"]
        start_steps, start = self._timesteps, time.time()
        bar = ProgressBar(budget["timesteps"], enabled=self.cfg.progress_bar)
        with interrupt_requests() as interrupted:
            while self._timesteps < target and not interrupted:
                result = self.algo.train()
                self._record(result, start_steps, time.time() - start)
                bar.update(self._timesteps - start_steps, self.logger.history.get("rollout/ep_rew_mean",
                                                                                  [(0, None)])[-1][1])
                if not all([c.on_step() for c in callbacks]):  # every callback sees the step
                    break
        bar.close()
        for callback in callbacks:
            callback.on_training_end()
        if interrupted:
            raise KeyboardInterrupt(f"training interrupted at step {self._timesteps}")

    def _record(self, result: dict, start_steps: int, elapsed: float) -> None:
        """One RLlib iteration's results under our keys, dumped at the run's timestep."""
        from ray.rllib.core import DEFAULT_MODULE_ID
        from ray.rllib.utils.metrics import (
            ENV_RUNNER_RESULTS,
            EPISODE_LEN_MEAN,
            EPISODE_RETURN_MEAN,
            LEARNER_RESULTS,
            NUM_ENV_STEPS_SAMPLED_LIFETIME,
            NUM_EPISODES_LIFETIME,
        )

        runners = result.get(ENV_RUNNER_RESULTS, {})
        self._timesteps = int(result.get(NUM_ENV_STEPS_SAMPLED_LIFETIME,
                                         runners.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, self._timesteps)))
        self._episodes = int(runners.get(NUM_EPISODES_LIFETIME, self._episodes))
        values = {"rollout/ep_rew_mean": runners.get(EPISODE_RETURN_MEAN),
                  "rollout/ep_len_mean": runners.get(EPISODE_LEN_MEAN),
                  **{k: v for k, v in runners.items() if k.startswith("imitation/")}}
        learner = result.get(LEARNER_RESULTS, {}).get(DEFAULT_MODULE_ID, {})
        values.update({ours: learner.get(theirs) for theirs, ours in LEARNER_KEYS.items()})
        values.update({"time/fps": (self._timesteps - start_steps) / max(elapsed, 1e-9),
                       "time/iterations": result.get("training_iteration"), "time/time_elapsed": elapsed,
                       "time/total_timesteps": self._timesteps})
        for key, value in values.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue  # absent (None), or not a scalar
            if math.isfinite(value):  # RLlib reports NaN for "no episode finished yet"
                self.logger.record(key, value)
        self.logger.dump(self._timesteps)

    def save(self, run_dir: Path) -> Path:
        from ray.rllib.core import DEFAULT_MODULE_ID

        from mimicgym.agents.checkpoint import save_checkpoint

        weights = self.algo.learner_group.get_weights()[DEFAULT_MODULE_ID]
        module_config = model_config_dict(self.algo.get_module().model_config)
        payload = checkpoint_payload(self.cfg.agent, weights, module_config, self.config, self.progress)
        return save_checkpoint(run_dir / self.model_file, payload)

    def close(self) -> None:
        if self.algo is not None:
            self.algo.stop()
            self.algo = None
        if self._owns_ray:
            import ray

            ray.shutdown()
            self._owns_ray = False


def describe_rllib(agent: str) -> list[tuple[str, str, str]]:
    """(name, default, "") per ``--set`` option of an RLlib algorithm (``mimicgym list --agent rllib:PPO``)."""
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    config = algorithm_class(agent).get_default_config()
    rows = [(name, repr(default), "") for name, default in sorted(training_options(config).items())]
    defaults = model_config_dict(DefaultModelConfig())
    return [*rows, (MODEL_CONFIG, "{}", f"the RLModule's, a table of RLlib's DefaultModelConfig keys "
                                        f"(fcnet_hiddens={defaults['fcnet_hiddens']}, fcnet_activation...)")]
