"""Prefect 1's ``prefect.utilities.tasks``; the real homes are in ``cairnflow.core``."""

from cairnflow.core.collections import (  # noqa: F401 - re-exported
    as_task,
)
from cairnflow.core.edge import (  # noqa: F401 - re-exported
    unmapped, mapped, flatten,
)
from cairnflow.core.functional import (  # noqa: F401 - re-exported
    apply_map, defaults_from_attrs, pause_task, tags,
)
from cairnflow.core.task import (  # noqa: F401 - re-exported
    task,
)

__all__ = [
    "as_task", "unmapped", "mapped", "flatten", "apply_map", "defaults_from_attrs",
    "pause_task", "tags", "task",
]
