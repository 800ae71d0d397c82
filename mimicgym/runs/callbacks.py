"""stable-baselines3 callbacks of the run layer; each works with our agents and SB3's alike."""

from __future__ import annotations

from typing import Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter

from mimicgym.agents.logging import Logger
from mimicgym.utils.progress import ProgressBar
from mimicgym.utils.signals import InterruptFlag


class Periodic(BaseCallback):
    """Calls ``action()`` whenever ``every`` more timesteps have passed (checkpoints, evaluations)."""

    def __init__(self, every: int, action: Callable[[], None]):
        super().__init__()
        self.every, self.action = int(every), action
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps - self.num_timesteps % self.every

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.every:
            self._last = self.num_timesteps - self.num_timesteps % self.every
            self.action()
        return True


class StopOnInterrupt(BaseCallback):
    """Ends SB3's ``learn`` at the next step once Ctrl-C (or SIGTERM) set ``flag``."""

    def __init__(self, flag: InterruptFlag):
        super().__init__()
        self.flag = flag

    def _on_step(self) -> bool:
        return not self.flag


class ProgressBarCallback(BaseCallback):
    """A tqdm bar over a SB3 run's timesteps with the latest episode return (SB3's own bar
    needs ``rich``)."""

    def __init__(self, total: int):
        super().__init__()
        self.total = total
        self._bar: ProgressBar | None = None
        self._start = 0

    def _on_training_start(self) -> None:
        self._bar, self._start = ProgressBar(self.total), self.num_timesteps

    def _on_step(self) -> bool:
        episodes = getattr(self.model, "ep_info_buffer", None)
        self._bar.update(self.num_timesteps - self._start, episodes[-1]["r"] if episodes else None)
        return True

    def _on_training_end(self) -> None:
        self._bar.close()


class LoggerBridge(KVWriter):
    """A SB3 logger output that hands every dump to our :class:`Logger`, so SB3 runs write the
    same TensorBoard events and ``progress.json`` as ours."""

    def __init__(self, logger: Logger):
        self.logger = logger

    def write(self, key_values: dict, key_excluded: dict, step: int = 0) -> None:
        for key, value in key_values.items():
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
                continue  # text, videos, figures: not scalars
            self.logger.record(key, float(value))
        self.logger.dump(step)

    def close(self) -> None:
        pass
