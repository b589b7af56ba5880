"""Prefect 1's ``prefect.engine.serializers``; they live in ``cairnflow.serializers``."""

from cairnflow.serializers import (  # noqa: F401 - re-exported
    Serializer, PickleSerializer, JSONSerializer, DateTimeSerializer, CompressedSerializer,
)

__all__ = [
    "Serializer", "PickleSerializer", "JSONSerializer", "DateTimeSerializer",
    "CompressedSerializer",
]
