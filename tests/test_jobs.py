"""The job mechanism in core: progress, results, cancellation, errors, the terminal bar."""

import io

import pytest

from core.console import ProgressPrinter, render, run_in_terminal
from core.jobs import Cancelled, CancelToken, JobError, Progress, drive, format_duration


def counting(n, token, log=None, fail_at=None):
    try:
        for i in range(n):
            if i == fail_at:
                raise JobError(f"step {i} failed", "details here")
            yield Progress(i + 1, n, f"step {i + 1}", {"loss": 1.0 / (i + 1)})
        return n * 10
    finally:
        if log is not None:
            log.append("cleaned up")


def test_drive_returns_result_and_reports_every_step():
    seen = []
    result = drive(counting(5, CancelToken()), CancelToken(), seen.append)
    assert result == 50
    assert [p.done for p in seen] == [1, 2, 3, 4, 5]
    assert seen[-1].fraction == 1.0
    assert seen[0].metrics["loss"] == 1.0


def test_cancel_between_steps_stops_and_runs_cleanup():
    token, log, seen = CancelToken(), [], []

    def on_progress(progress):
        seen.append(progress)
        if progress.done == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        drive(counting(100, token, log), token, on_progress)
    assert [p.done for p in seen] == [1, 2]
    assert log == ["cleaned up"]


def test_cancel_inside_a_step_via_raise_if_cancelled():
    token = CancelToken()

    def job(token):
        yield Progress(0, 3)
        token.cancel()  # as if another thread pressed Cancel mid-step
        token.raise_if_cancelled()
        yield Progress(1, 3)

    with pytest.raises(Cancelled):
        drive(job(token), token)


def test_error_carries_message_and_details():
    with pytest.raises(JobError) as info:
        drive(counting(5, CancelToken(), fail_at=3), CancelToken())
    assert info.value.message == "step 3 failed"
    assert info.value.details == "details here"


def test_progress_fraction():
    assert Progress(3, None).fraction is None
    assert Progress(3, 0).fraction is None
    assert Progress(5, 4).fraction == 1.0
    assert Progress(1, 4).fraction == 0.25


def test_format_duration():
    assert format_duration(None) == ""
    assert format_duration(5) == "0:05"
    assert format_duration(125) == "2:05"
    assert format_duration(3725) == "1:02:05"


def test_render_line():
    line = render(Progress(45, 100, "training", {"loss": 0.3125}), "0:12")
    assert "45%" in line and "45/100" in line and "training" in line
    assert "loss 0.3125" in line and line.endswith("ETA 0:12")
    assert render(Progress(7, None, "listing")) == "listing"


def test_terminal_runner_prints_progress_and_final_state():
    stream = io.StringIO()
    result = run_in_terminal(lambda token: counting(3, token), stream=stream, interval=0)
    assert result == 30
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("[") and "100%" in lines[-1] and "3/3" in lines[-1]


def test_printer_throttles_when_not_a_terminal():
    stream = io.StringIO()
    printer = ProgressPrinter(stream, interval=3600)
    for i in range(50):
        printer(Progress(i + 1, 50))
    printer.finish()
    assert len(stream.getvalue().splitlines()) == 2  # the first, then the final state
    # a milestone (an epoch's scores, a note) is never thrown away, and the final state is
    # not written twice
    stream = io.StringIO()
    printer = ProgressPrinter(stream, interval=3600)
    printer(Progress(1, 3))
    printer(Progress(2, 3, "Left out 4 unreadable images", milestone=True))
    printer(Progress(3, 3, "done", milestone=True))
    printer.finish()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "Left out 4" in lines[1] and lines[2].endswith("done")


def test_eta_waits_for_a_rate_then_extrapolates(monkeypatch):
    import core.jobs as jobs

    clock = [100.0]
    monkeypatch.setattr(jobs.time, "monotonic", lambda: clock[0])
    eta = jobs.Eta(settle=2.0)
    assert eta.remaining(Progress(40, 100)) is None  # first sight: resumed at 40 %
    clock[0] += 1.0
    assert eta.remaining(Progress(45, 100)) is None  # not settled yet
    clock[0] += 3.0
    assert eta.remaining(Progress(60, 100)) == pytest.approx(8.0)  # 20 % in 4 s, 40 % left
    assert eta.remaining(Progress(60, None)) is None


def test_format_metrics():
    from core.jobs import format_metrics

    assert format_metrics({"loss": 0.3125, "images": 1200.0}) == "loss 0.3125  images 1,200"
