"""A tqdm progress bar over timesteps (or episodes) that shows the latest episode return."""

from __future__ import annotations


class ProgressBar:
    """``update(done, last_return)`` moves the bar to ``done`` units; cheap to call often."""

    def __init__(self, total: float | None, unit: str = "step", enabled: bool = True):
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit=unit, dynamic_ncols=True, smoothing=0.1)

    def update(self, done: int, last_return: float | None = None) -> None:
        bar = self._bar
        if bar is None:
            return
        if last_return is not None:
            bar.set_postfix_str(f"return {last_return:.4g}", refresh=False)
        if done > bar.n:
            bar.update(done - bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
