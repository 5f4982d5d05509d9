"""``python -m gradspec``: the ``gradspec`` command."""

from .cli import main

raise SystemExit(main())
