"""One thin logger for every trainer: TensorBoard scalars under stable-baselines3 key names.

Keys follow SB3 (``rollout/ep_rew_mean``, ``rollout/ep_len_mean``, ``train/loss``,
``time/fps``...). Values recorded between two ``dump(step)`` calls are averaged. The
in-memory ``history`` keeps every dumped value, for plots and determinism tests.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from mimicgym.utils.io import atomic_write


class Logger:
    """Scalars under SB3's keys, averaged between dumps, to TensorBoard and ``progress.json``.

    A resumed run passes the ``history`` it kept (points up to its checkpoint) and
    ``purge_step``: TensorBoard then hides the old run's events from that step on, so the
    curves continue from the checkpoint instead of overlapping.
    """

    def __init__(self, logdir: str | Path | None = None, hparams: dict | None = None,
                 history: dict[str, list] | None = None, purge_step: int | None = None):
        self.logdir = Path(logdir) if logdir is not None else None
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for key, points in (history or {}).items():
            self.history[key] = [(int(s), float(v)) for s, v in points]
        self._pending: dict[str, list[float]] = defaultdict(list)
        self._writer = None
        self._hparams = hparams
        if self.logdir is not None:
            # torch's SummaryWriter is imported only when a run actually writes events.
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.logdir), purge_step=purge_step)
            if hparams and purge_step is None:
                self._writer.add_text("hyperparameters", _markdown_table(hparams), 0)

    def record(self, key: str, value: float, exclude=None) -> None:
        """Record ``value`` under ``key`` (``exclude`` is SB3's; every output gets it here)."""
        self._pending[key].append(float(value))

    record_mean = record  # SB3's name for averaging records, which ours always do

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

    def state_dict(self) -> dict[str, dict[str, Any]]:
        """What a checkpoint keeps of the log: the dumped ``history`` (per key, its steps and
        values as arrays) and the values recorded since the last dump, which belong to the next
        dump of the continued run."""
        history = {k: [np.array([s for s, _ in points], dtype=np.int64),
                       np.array([v for _, v in points], dtype=np.float64)]
                   for k, points in self.history.items()}
        return {"history": history,
                "pending": {k: np.array(values, dtype=np.float64) for k, values in self._pending.items() if values}}

    def load_state_dict(self, state: dict[str, dict[str, Any]]) -> None:
        """Continue the log of :meth:`state_dict` (events already written stay as they are)."""
        self.history = defaultdict(list, {k: list(zip(np.asarray(steps).tolist(), np.asarray(values).tolist()))
                                          for k, (steps, values) in state["history"].items()})
        self._pending = defaultdict(list, {k: np.asarray(values).tolist()
                                           for k, values in state["pending"].items()})

    def flush(self) -> None:
        """Make what was dumped so far durable: event files and ``progress.json``."""
        if self._writer is not None:
            self._writer.flush()
            with atomic_write(self.logdir / "progress.json", "w") as f:
                json.dump(self.history, f)

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
            self.flush()
            self._writer.close()


class EpisodeStats:
    """Returns and lengths of the finished episodes, in order."""

    def __init__(self):
        self.returns: list[float] = []
        self.lengths: list[int] = []

    def add(self, episode_return: float, length: int) -> None:
        self.returns.append(float(episode_return))
        self.lengths.append(int(length))


def _markdown_table(params: dict) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in params.items())
    return f"| parameter | value |\n|---|---|\n{rows}"
