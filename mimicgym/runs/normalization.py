"""``VecNormalize`` statistics as plain arrays (``vecnormalize.npz``), never as a pickle.

stable-baselines3 pickles the whole wrapper; a pickle can run code when loaded, so runs store
the running means, variances and counts, the clipping bounds and the discount as arrays in one
``.npz`` (loaded with ``allow_pickle=False``) and rebuild the wrapper around a fresh env. A
``vecnormalize.pkl`` (what SB3 and older runs write) is never read unless the user says they
trust it (``--trust-pickle``): then :func:`convert_pickled_stats` reads it once and writes the
arrays beside it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from mimicgym.errors import CheckpointError
from mimicgym.utils.io import atomic_save_npz

STATS_FILE = "vecnormalize.npz"
PICKLED_STATS_FILE = "vecnormalize.pkl"
_SCALARS = ("clip_obs", "clip_reward", "gamma", "epsilon", "norm_obs", "norm_reward")


def save_vec_normalize(venv, path: str | Path) -> Path:
    """The statistics of a (Box-observation) ``VecNormalize`` to ``path``, atomically."""
    path = Path(path)
    atomic_save_npz(path, obs_mean=venv.obs_rms.mean, obs_var=venv.obs_rms.var,
                    obs_count=np.float64(venv.obs_rms.count), ret_mean=venv.ret_rms.mean,
                    ret_var=venv.ret_rms.var, ret_count=np.float64(venv.ret_rms.count),
                    returns=venv.returns, **{k: np.float64(getattr(venv, k)) for k in _SCALARS})
    return path


def convert_pickled_stats(folder: str | Path) -> Path | None:
    """Read ``folder/vecnormalize.pkl`` (a pickle: this RUNS ANY CODE IT HOLDS; call it only
    for files you trust) and write its statistics as ``folder/vecnormalize.npz``. Returns the
    new file, or None when there is no pickle or the arrays already exist (then the pickle is
    not read).
    """
    import pickle

    folder = Path(folder)
    pickled, arrays = folder / PICKLED_STATS_FILE, folder / STATS_FILE
    if arrays.exists() or not pickled.exists():
        return None
    with open(pickled, "rb") as f:
        try:
            normalizer = pickle.load(f)  # noqa: S301 - the user vouched for this file
        except Exception as e:
            raise CheckpointError(f"{pickled}: not a readable pickle ({type(e).__name__}: {e})") from None
    # Unpickled without its env, the wrapper forwards unknown attributes to a missing venv:
    # read its own __dict__ only.
    state = getattr(normalizer, "__dict__", {})
    missing = [k for k in ("obs_rms", "ret_rms", *_SCALARS) if k not in state]
    if missing:
        raise CheckpointError(f"{pickled}: holds a {type(normalizer).__name__}, not VecNormalize statistics "
                              f"(no {', '.join(missing)})")
    # SB3 does not pickle the running discounted returns: they restart, as after its own load.
    return save_vec_normalize(SimpleNamespace(**{"returns": np.zeros(0), **state}), arrays)


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
                f"loaded): it is not read unless you trust it and pass --trust-pickle, which converts it "
                f"once to {path.name}") if pickled.exists() else ""
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
