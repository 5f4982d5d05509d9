"""``gradspec.style`` is :mod:`gradspec.plots.style`: this path is kept for existing imports.

``import gradspec.style`` gives the very module object ``gradspec.plots.style``.
"""

import sys

from .plots import style as _module

sys.modules[__name__] = _module
