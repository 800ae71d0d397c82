"""An RLlib run's policy: its RLModule behind stable-baselines3's ``predict``, saved as weights
and rebuilt from the run's config, so that ``mimicgym eval`` loads nothing that can run code.

RLlib's own checkpoints pickle (``class_and_ctor_args.pkl``, and each component's state unless
msgpack is asked for), so a run saves ``model.pt`` instead: the module's weights as tensors,
with the resolved ``model_config`` (plain values) and the action post-processing settings,
written by :func:`mimicgym.agents.checkpoint.save_checkpoint` (``weights_only`` loads, sha256).
Loading builds the algorithm's default RLModule from that ``model_config`` and the run's env
spaces, then loads the weights strictly: a file that does not fit is a ``CheckpointError``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from mimicgym.errors import CheckpointError, ConfigError
from mimicgym.runs.config import RLLIB_PREFIX, RunConfig

INSTALL_HINT = ("pip install 'mimicgym[rllib]' (it pins gymnasium==1.2.2, so give it a virtual "
                "environment of its own, as `make test` does with .venv-rllib)")
# RLlib's offline algorithms learn from recorded data sets, which a run does not have.
OFFLINE_ALGORITHMS = ("BC", "CQL", "IQL", "MARWIL")
CHECKPOINT_CLASS = "rllib"  # the "class" entry of model.pt: rllib:<ALGO>


def import_rllib() -> dict[str, Any]:
    """RLlib's algorithm registry (name -> importer), or a ``ConfigError`` naming the extra."""
    try:
        import ray.rllib  # noqa: F401  (the ray wheel ships it; its dependencies come with the extra)
        from ray.rllib.algorithms.registry import ALGORITHMS
    except ImportError as e:
        raise ConfigError(f"RLlib is not installed ({e}); {INSTALL_HINT}") from None
    return ALGORITHMS


def algorithm_name(agent: str) -> str:
    """``rllib:ppo`` -> ``PPO``: the registry's spelling of an online algorithm, or a ``ConfigError``."""
    registry = import_rllib()
    asked = agent[len(RLLIB_PREFIX):] if agent.startswith(RLLIB_PREFIX) else agent
    names = {name.lower(): name for name in registry}
    online = ", ".join(RLLIB_PREFIX + n for n in registry if n not in OFFLINE_ALGORITHMS)
    name = names.get(asked.lower())
    if name is None:
        raise ConfigError(f"unknown RLlib algorithm {asked!r} (agent {agent!r}); choose one of {online}")
    if name in OFFLINE_ALGORITHMS:
        raise ConfigError(f"rllib:{name} learns from offline data, which a run does not record; "
                          f"choose one of {online}")
    return name


def algorithm_class(agent: str) -> type:
    return import_rllib()[algorithm_name(agent)]()[0]


def model_config_dict(model_config: Any) -> dict[str, Any]:
    """An RLModule's ``model_config`` (a dict or RLlib's ``DefaultModelConfig``) as a dict."""
    if dataclasses.is_dataclass(model_config):
        return dataclasses.asdict(model_config)
    return dict(model_config or {})


def module_spec(algo: type, observation_space, action_space, model_config: dict[str, Any]):
    """The algorithm's default RLModule spec on these spaces (full: actor and critic)."""
    config = (algo.get_default_config().framework("torch")
              .environment(observation_space=observation_space, action_space=action_space)
              .rl_module(model_config=model_config))
    return config.get_rl_module_spec(inference_only=False)


class RllibPolicy:
    """``predict(obs, deterministic=True)`` of an RLModule, as RLlib's env runner acts.

    Deterministic actions are the module's greedy ones (``forward_inference``: DQN's argmax
    Q, the mode of PPO's categorical, the mean of its Gaussian); Box actions are then mapped to
    the env's bounds as RLlib's ``NormalizeAndClipActions`` connector does (``normalize_actions``:
    from [-1, 1] to [low, high]; else ``clip_actions``)."""

    def __init__(self, module, action_space, normalize_actions: bool = True, clip_actions: bool = False):
        self.module = module
        self.action_space = action_space
        self.normalize_actions, self.clip_actions = bool(normalize_actions), bool(clip_actions)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        import torch
        from ray.rllib.core.columns import Columns
        from ray.rllib.utils.spaces.space_utils import clip_action, get_base_struct_from_space, unsquash_action
        from ray.rllib.utils.torch_utils import convert_to_torch_tensor

        batch = {Columns.OBS: convert_to_torch_tensor(np.asarray(observation)[None])}  # float64 -> float32
        with torch.no_grad():
            out = self.module.forward_inference(batch)
            if Columns.ACTIONS in out:
                action = out[Columns.ACTIONS]
            else:
                dist = self.module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
                action = (dist.to_deterministic() if deterministic else dist).sample()
        action = action.cpu().numpy()[0]
        struct = get_base_struct_from_space(self.action_space)
        if self.normalize_actions:
            action = unsquash_action(action, struct)
        elif self.clip_actions:
            action = clip_action(action, struct)
        return action, None


def checkpoint_payload(agent: str, weights: dict[str, Any], model_config: dict[str, Any], config,
                       progress: dict[str, int]) -> dict[str, Any]:
    """What ``model.pt`` holds: tensors and plain values only."""
    return {"class": f"{CHECKPOINT_CLASS}:{algorithm_name(agent)}", "module": dict(weights),
            "model_config": _plain(model_config, "model_config"),
            "normalize_actions": bool(config.normalize_actions), "clip_actions": bool(config.clip_actions),
            **progress}


def _plain(value: Any, where: str) -> Any:
    """``value`` if it is made of plain values (what a weights-only load reads), else a ``ConfigError``."""
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"{where} holds a {type(value).__name__}, which model.pt cannot store; "
                      f"give plain values (numbers, strings, lists)")


class LoadedRllibRun:
    """A saved RLlib run's policy for evaluation (``mimicgym eval``, ``render``): the learner
    interface the playback needs (``model``, ``normalize_obs``, ``close``)."""

    normalize_obs = None

    def __init__(self, cfg: RunConfig, path: Path, env):
        from mimicgym.agents.checkpoint import load_checkpoint

        name = algorithm_name(cfg.agent)
        try:
            payload = load_checkpoint(path, expected_class=f"{CHECKPOINT_CLASS}:{name}")
        except FileNotFoundError as e:
            raise CheckpointError(str(e)) from None
        spec = module_spec(algorithm_class(cfg.agent), env.observation_space, env.action_space,
                           payload["model_config"])
        module = spec.build()
        try:
            module.load_state_dict(payload["module"], strict=True)
        except (RuntimeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: the saved weights do not fit rllib:{name}'s module on "
                                  f"{cfg.env} ({e})") from None
        module.eval()
        self.model = RllibPolicy(module, env.action_space, payload["normalize_actions"], payload["clip_actions"])
        self.progress = {"timesteps": int(payload.get("timesteps", 0))}

    def close(self) -> None:
        pass


def load_rllib_run(run_dir: Path, cfg: RunConfig, path: Path) -> LoadedRllibRun:
    """The policy of an RLlib run directory, rebuilt on the run's env spaces."""
    from mimicgym.runs.envs import make_env

    env = make_env(cfg)
    try:
        return LoadedRllibRun(cfg, path, env)
    finally:
        env.close()
