"""Progress on long work: a line every few seconds with step, rate and time left; silent when asked."""

from __future__ import annotations

from evaluation.attacks.training import attack_progress, counted_steps
from trainers.progress import StepProgress, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_interval_with_the_rate_and_the_time_left() -> None:
    clock, lines = FakeClock(), []
    progress = StepProgress(100, steps_done=20, every_s=10.0, emit=lines.append, label="  ", clock=clock)
    for _ in range(40):  # 2 steps a second, 32 images a step
        clock.now += 0.5
        progress.step(images=32)
    assert lines == [
        "  step 40/100  64 img/s  2.00 steps/s  left 0:30",
        "  step 60/100  64 img/s  2.00 steps/s  left 0:20",
    ]


def test_a_progress_with_no_interval_says_nothing() -> None:
    clock, lines = FakeClock(), []
    progress = StepProgress(10, every_s=0.0, emit=lines.append, clock=clock)
    for _ in range(10):
        clock.now += 100.0
        progress.step(images=1)
    assert lines == [] and not progress.enabled


def test_durations_read_as_minutes_or_hours() -> None:
    assert [format_duration(s) for s in (5, 65, 3725, float("inf"))] == ["0:05", "1:05", "1:02:05", "?"]


def test_attack_loops_report_only_inside_an_attack_progress_block(monkeypatch) -> None:
    import trainers.progress as progress_module

    clock = FakeClock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    lines: list[str] = []
    for _ in counted_steps(30, "GAN prior"):
        clock.now += 1.0
    assert lines == []
    with attack_progress(lines.append, "run: whitebox (key unknown)"):
        assert list(counted_steps(3, "x")) == [0, 1, 2]
        for _ in counted_steps(30, "GAN prior"):
            clock.now += 1.0
    assert lines == [
        "run: whitebox (key unknown) GAN prior: step 10/30  1.00 steps/s  left 0:20",
        "run: whitebox (key unknown) GAN prior: step 20/30  1.00 steps/s  left 0:10",
        "run: whitebox (key unknown) GAN prior: step 30/30  1.00 steps/s  left 0:00",
    ]


def test_a_quiet_run_masks_its_data_without_progress_bars(synthetic_faces, client_key, tmp_path, capsys) -> None:
    from pipelines.client.keyfile import read_key_file
    from pipelines.runs.training import masked_data_for

    key = read_key_file(client_key)
    masked_data_for(synthetic_faces, key, 0.5, tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""
    masked_data_for(synthetic_faces, key, 0.5, tmp_path / "shown")
    assert "mask private" in capsys.readouterr().err
