"""``gradspec.tasks`` is :mod:`gradspec.training.tasks`: this path is kept for existing imports.

``import gradspec.tasks`` gives the very module object ``gradspec.training.tasks``.
"""

import sys

from .training import tasks as _module

sys.modules[__name__] = _module
