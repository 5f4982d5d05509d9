"""``gradspec.figures`` is :mod:`gradspec.plots.figures`: this path is kept for existing imports.

``import gradspec.figures`` gives the very module object ``gradspec.plots.figures``.
"""

import sys

from .plots import figures as _module

sys.modules[__name__] = _module
