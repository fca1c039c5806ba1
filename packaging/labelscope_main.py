"""The frozen app's entry point (PyInstaller): freeze_support first, so that DataLoader and
generator workers started by the bundle run their task instead of a second window; then the
same launcher `labelscope` runs (which imports torch before PySide6)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from gui.launcher import main

    sys.exit(main())
