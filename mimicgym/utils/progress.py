"""A tqdm progress bar over timesteps, episodes or epochs that shows the latest value of one metric."""

from __future__ import annotations


class ProgressBar:
    """``update(done, value)`` moves the bar to ``done`` units and shows ``label value``;
    cheap to call often."""

    def __init__(self, total: float | None, unit: str = "step", enabled: bool = True, label: str = "return"):
        self._bar = None
        self.label = label
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit=unit, dynamic_ncols=True, smoothing=0.1)

    def update(self, done: int, value: float | None = None) -> None:
        bar = self._bar
        if bar is None:
            return
        if value is not None:
            bar.set_postfix_str(f"{self.label} {value:.4g}", refresh=False)
        if done > bar.n:
            bar.update(done - bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
