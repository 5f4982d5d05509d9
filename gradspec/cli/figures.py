"""``gradspec figures``: the paper's figure set (moved here from gradspec.plots.figures)."""

from ..plots.figures import add_parser as add_parser
from ..plots.figures import main as main
