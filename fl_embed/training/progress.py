"""The trainer's progress line: step, loss, steps per second and the time left."""

import time


def format_duration(seconds: float) -> str:
    """`1h02m03s`, `4m05s` or `7s` for a number of seconds (negative counts as 0)."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Progress:
    """Measures steps per second since the previous report and projects the time left.

    Args:
      total_steps: the step the run ends at.
      start_step: the step the run (or its resumption) starts at.
      clock: seconds as a float; `time.monotonic` unless a test passes its own.
    """

    def __init__(self, total_steps: int, start_step: int = 0, clock=time.monotonic):
        self.total_steps = int(total_steps)
        self._clock = clock
        self._last_step = int(start_step)
        self._last_time = clock()

    def line(self, step: int, values: dict[str, float]) -> str:
        """`step 200/1500 (13%) | loss 1.234 | 5.1 steps/s | ETA 4m15s`, then restarts the window.

        Args:
          step: the step just finished.
          values: scalars to show (name -> value).

        Returns:
          The progress line.
        """
        now = self._clock()
        elapsed = now - self._last_time
        rate = (step - self._last_step) / elapsed if elapsed > 0 else float("inf")
        self._last_step, self._last_time = step, now
        eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
        shown = " | ".join(f"{name} {value:.4g}" for name, value in values.items())
        percent = 100.0 * step / self.total_steps
        parts = [f"step {step}/{self.total_steps} ({percent:.0f}%)"]
        parts += [shown] if shown else []
        eta_text = format_duration(eta) if eta != float("inf") else "?"
        parts += [f"{rate:.2f} steps/s", f"ETA {eta_text}"]
        return " | ".join(parts)
