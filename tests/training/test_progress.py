"""Tests of fl_embed.training.progress: steps/s and ETA of the progress line."""

from fl_embed.training import Progress, format_duration


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_rate_and_eta_come_from_the_last_window():
    clock = FakeClock()
    progress = Progress(total_steps=1000, start_step=200, clock=clock)
    clock.now += 10.0
    line = progress.line(250, {"loss": 1.5})
    assert "step 250/1000 (25%)" in line and "loss 1.5" in line
    assert "5.00 steps/s" in line and "ETA 2m30s" in line
    clock.now += 1.0
    assert "50.00 steps/s" in progress.line(300, {})


def test_format_duration():
    assert format_duration(7.2) == "7s"
    assert format_duration(245) == "4m05s"
    assert format_duration(3723) == "1h02m03s"
    assert format_duration(-3) == "0s"
