"""Task data: schemas, the embedded CLDR benchmark, hub and local loaders, prompts."""

from grasp_env.data.loaders import HUB_DATASETS, load_rows, load_source_splits, load_target_splits
from grasp_env.data.schema import TASKS, DataError
from grasp_env.data.splits import SplitSizes, TaskSplits

__all__ = [
    "HUB_DATASETS",
    "TASKS",
    "DataError",
    "SplitSizes",
    "TaskSplits",
    "load_rows",
    "load_source_splits",
    "load_target_splits",
]
