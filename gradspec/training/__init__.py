"""Training on long-range tasks, and the check of a prediction against it.

``tasks``: the tasks and their chance-level losses; ``config``: :class:`TrainConfig`;
``loop``: the jit-compiled optax run (:func:`train`); ``flossing``: gradient flossing
(:func:`floss`, :class:`FlossConfig`) and the Lyapunov exponents recorded through
training; ``verify``: predict, train and compare (:func:`verify`). ``gradspec.train`` and ``gradspec.verify`` are the functions;
this package is where their helpers live (``gradspec.training.task_batch``, ...).
"""

from . import flossing as flossing
from . import tasks as tasks
from .config import CELLS as CELLS
from .config import INITS as INITS
from .config import OPTIMIZERS as OPTIMIZERS
from .config import TrainConfig as TrainConfig
from .flossing import FlossConfig as FlossConfig
from .flossing import FlossState as FlossState
from .flossing import floss as floss
from .flossing import flossing_loss as flossing_loss
from .flossing import lyapunov_drive as lyapunov_drive
from .flossing import task_inputs as task_inputs
from .loop import apply as apply
from .loop import init_params as init_params
from .loop import task_batch as task_batch
from .loop import train as train
from .result import OUTCOMES as OUTCOMES
from .result import TrainResult as TrainResult
from .verify import agreement as agreement
from .verify import demo_grid as demo_grid
from .verify import format_table as format_table
from .verify import read_grid as read_grid
from .verify import study_grid as study_grid
from .verify import verify as verify

__all__ = [
    "flossing",
    "tasks",
    "CELLS",
    "INITS",
    "OPTIMIZERS",
    "TrainConfig",
    "FlossConfig",
    "FlossState",
    "floss",
    "flossing_loss",
    "lyapunov_drive",
    "task_inputs",
    "OUTCOMES",
    "TrainResult",
    "apply",
    "init_params",
    "task_batch",
    "train",
    "agreement",
    "demo_grid",
    "format_table",
    "read_grid",
    "study_grid",
    "verify",
]
