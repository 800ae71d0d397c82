"""One thin logger for every trainer: TensorBoard scalars under stable-baselines3 key names.

Keys follow SB3 (``rollout/ep_rew_mean``, ``rollout/ep_len_mean``, ``train/loss``,
``time/fps``...). Values recorded between two ``dump(step)`` calls are averaged. The
in-memory ``history`` keeps every dumped value, for plots and determinism tests.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from pathlib import Path

import numpy as np

from mimicgym.utils.io import atomic_write


class Logger:
    def __init__(self, logdir: str | Path | None = None, hparams: dict | None = None):
        self.logdir = Path(logdir) if logdir is not None else None
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self._pending: dict[str, list[float]] = defaultdict(list)
        self._writer = None
        self._hparams = hparams
        if self.logdir is not None:
            # torch's SummaryWriter is imported only when a run actually writes events.
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.logdir))
            if hparams:
                self._writer.add_text("hyperparameters", _markdown_table(hparams), 0)

    def record(self, key: str, value: float) -> None:
        self._pending[key].append(float(value))

    @property
    def has_pending(self) -> bool:
        """Whether values were recorded since the last dump."""
        return any(self._pending.values())

    def dump(self, step: int) -> dict[str, float]:
        """Write the mean of each pending key at ``step``; return what was written."""
        written = {k: float(np.mean(v)) for k, v in self._pending.items() if v}
        for key, value in written.items():
            self.history[key].append((int(step), value))
            if self._writer is not None:
                self._writer.add_scalar(key, value, int(step))
        self._pending.clear()
        return written

    def close(self, final_metrics: dict[str, float] | None = None) -> None:
        if self._writer is not None:
            if self._hparams:
                metrics = final_metrics or {}
                self._writer.add_hparams(
                    {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                     for k, v in self._hparams.items()},
                    {f"hparam/{k}": v for k, v in metrics.items()},
                    run_name=".",
                )
            self._writer.close()
            with atomic_write(self.logdir / "progress.json", "w") as f:
                json.dump(self.history, f)


class EpisodeStats:
    """Returns and lengths of finished episodes; means over the last ``window`` as SB3 does."""

    def __init__(self, window: int = 100):
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self._recent_r: deque[float] = deque(maxlen=window)
        self._recent_l: deque[int] = deque(maxlen=window)
        self._start = time.perf_counter()

    def add(self, episode_return: float, length: int) -> None:
        self.returns.append(float(episode_return))
        self.lengths.append(int(length))
        self._recent_r.append(float(episode_return))
        self._recent_l.append(int(length))

    def record(self, logger: Logger, timesteps: int) -> None:
        if self._recent_r:
            logger.record("rollout/ep_rew_mean", np.mean(self._recent_r))
            logger.record("rollout/ep_len_mean", np.mean(self._recent_l))
        elapsed = time.perf_counter() - self._start
        logger.record("time/fps", timesteps / max(elapsed, 1e-9))
        logger.record("time/episodes", len(self.returns))


def _markdown_table(params: dict) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in params.items())
    return f"| parameter | value |\n|---|---|\n{rows}"
