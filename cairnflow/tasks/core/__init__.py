"""Prefect 1's ``prefect.tasks.core``: function, constants, collections, operators,
resource_manager."""

__all__: list[str] = []
