"""A real app process that starts formula training in the Train tab, each step made slow,
and closes the window during a step: run by tests/test_close_during_training.py and by
benchmarks/reliability.py.

    python -m tests.close_during_training SECONDS_PER_STEP

Prints `exited CODE SECONDS_TO_EXIT RUN_FOLDER` when the event loop has ended.
"""

from __future__ import annotations

import sys
import time

import torch


def main() -> None:
    slow = float(sys.argv[1])
    real = torch.nn.CTCLoss.forward

    def slow_forward(self, *args):
        time.sleep(slow)
        return real(self, *args)

    torch.nn.CTCLoss.forward = slow_forward
    from gui.app import create_application
    from gui.main_window import MainWindow

    app = create_application()
    window = MainWindow(save_settings=False)
    window.show()
    window.show_workbench("formulas")
    panel = window.workbenches["formulas"].train
    panel.steps.setValue(1000)
    panel.batch.setValue(8)
    panel.workers.setValue(0)
    handle = panel.start()
    closed_at: list[float] = []

    def close_mid_step(progress) -> None:
        if progress.done >= 2 and not closed_at:
            closed_at.append(time.monotonic())
            window.close()

    handle.progress.connect(close_mid_step)
    code = app.exec()
    waited = time.monotonic() - closed_at[0] if closed_at else float("nan")
    print(f"exited {code} {waited:.2f} {panel.run_dir}", flush=True)


if __name__ == "__main__":
    main()
