"""Prefect 1's ``prefect.tasks.core.resource_manager``; the real home is
``cairnflow.core.resource_manager``."""

from cairnflow.core.resource_manager import (  # noqa: F401 - re-exported
    resource_manager, ResourceManager, ResourceContext, ResourceInitTask, ResourceSetupTask,
    ResourceCleanupTask, resource_cleanup_trigger,
)

__all__ = [
    "resource_manager", "ResourceManager", "ResourceContext", "ResourceInitTask",
    "ResourceSetupTask", "ResourceCleanupTask", "resource_cleanup_trigger",
]
