"""``VecNormalize`` statistics as plain arrays (``vecnormalize.npz``), never as a pickle.

stable-baselines3 pickles the whole wrapper; a pickle can run code when loaded, so runs store
the running means, variances and counts, the clipping bounds and the discount as arrays in one
``.npz`` (loaded with ``allow_pickle=False``) and rebuild the wrapper around a fresh env.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from mimicgym.errors import CheckpointError
from mimicgym.utils.io import atomic_save_npz

STATS_FILE = "vecnormalize.npz"
_SCALARS = ("clip_obs", "clip_reward", "gamma", "epsilon", "norm_obs", "norm_reward")


def save_vec_normalize(venv, path: str | Path) -> Path:
    """The statistics of a (Box-observation) ``VecNormalize`` to ``path``, atomically."""
    path = Path(path)
    atomic_save_npz(path, obs_mean=venv.obs_rms.mean, obs_var=venv.obs_rms.var,
                    obs_count=np.float64(venv.obs_rms.count), ret_mean=venv.ret_rms.mean,
                    ret_var=venv.ret_rms.var, ret_count=np.float64(venv.ret_rms.count),
                    returns=venv.returns, **{k: np.float64(getattr(venv, k)) for k in _SCALARS})
    return path


def load_vec_normalize(path: str | Path, venv, training: bool = True):
    """A ``VecNormalize`` around ``venv`` with the statistics saved at ``path``."""
    from stable_baselines3.common.vec_env import VecNormalize

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            stats = {k: data[k] for k in data.files}
    except FileNotFoundError:
        pickled = path.with_suffix(".pkl")
        hint = (f"; {pickled.name} beside it is a pickle (SB3's format, which can run code when "
                f"loaded): it is not read") if pickled.exists() else ""
        raise CheckpointError(f"{path}: no normalisation statistics{hint}") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise CheckpointError(f"{path}: not a readable statistics file ({e})") from None
    missing = {"obs_mean", "obs_var", "obs_count", "ret_mean", "ret_var", "ret_count", *_SCALARS} - set(stats)
    if missing:
        raise CheckpointError(f"{path}: missing {sorted(missing)}")
    shape = venv.observation_space.shape
    if stats["obs_mean"].shape != shape or stats["obs_var"].shape != shape:
        raise CheckpointError(f"{path}: statistics of shape {stats['obs_mean'].shape}, the env's "
                              f"observations have shape {shape}")
    for key, value in stats.items():
        if value.dtype.kind not in "fbiu" or not np.isfinite(value).all():
            raise CheckpointError(f"{path}: {key!r} is not finite real data")
    normalizer = VecNormalize(venv, training=training, norm_obs=bool(stats["norm_obs"]),
                              norm_reward=bool(stats["norm_reward"]), clip_obs=float(stats["clip_obs"]),
                              clip_reward=float(stats["clip_reward"]), gamma=float(stats["gamma"]),
                              epsilon=float(stats["epsilon"]))
    normalizer.obs_rms.mean, normalizer.obs_rms.var = stats["obs_mean"], stats["obs_var"]
    normalizer.obs_rms.count = float(stats["obs_count"])
    normalizer.ret_rms.mean, normalizer.ret_rms.var = stats["ret_mean"], stats["ret_var"]
    normalizer.ret_rms.count = float(stats["ret_count"])
    if "returns" in stats and stats["returns"].shape == normalizer.returns.shape:
        normalizer.returns = stats["returns"].astype(np.float64)
    return normalizer
