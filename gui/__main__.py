"""`python -m gui` opens the app, like `labelscope`."""

import sys

from gui.launcher import main

if __name__ == "__main__":
    sys.exit(main())
