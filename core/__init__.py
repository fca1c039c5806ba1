"""Labelscope's computing layer: everything the app does, with no Qt anywhere below here."""

import os as _os
import sys as _sys

from core.image_sizes import MAX_PIXELS as _LIMIT

__version__ = "0.1.0"
APP_NAME = "Labelscope"

# OpenCV reads its decoder's size limit once, when it loads: set it before anything imports
# cv2, so that an image whose header our own guard could not read (core.image_sizes) is still
# refused by the decoder rather than decoded into gigabytes. A lower limit already set stays.
_set = _os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", "")
_lower = _set.isdigit() and 0 < int(_set) <= _LIMIT
if not _lower:
    _os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(_LIMIT)
#: Whether OpenCV's decoder enforces the limit: it read the variable when it loaded, so not
#: when something imported cv2 before this package (core.images is stricter then).
CV2_LIMITED = _lower or "cv2" not in _sys.modules
