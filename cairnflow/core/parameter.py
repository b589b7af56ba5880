"""Parameters: values given to a flow when it runs."""

from __future__ import annotations

from typing import Any

from cairnflow.context import context
from cairnflow.core.task import Task

__all__ = ["Parameter", "DateTimeParameter", "no_default"]


class _NoDefault:
    def __repr__(self) -> str:
        return "no_default"


no_default: Any = _NoDefault()


class Parameter(Task):
    """A value supplied at run time: ``flow.run(name="Marvin")``.

    Its slug is its name, so a flow cannot hold two parameters of one name.

    Args:
        name: the parameter's name.
        default: the value used when none is given.
        required: whether a value must be given; True when there is no default.

    Example:
        >>> from cairnflow import Flow, Parameter, task
        >>> @task
        ... def say_hello(person):
        ...     print(f"Hello, {person}!")
        >>> with Flow("Say hi!") as flow:
        ...     name = Parameter("name")
        ...     say_hello(name)
        <Task: say_hello>
        >>> state = flow.run(name="Marvin")
        Hello, Marvin!
    """

    def __init__(self, name: str, default: Any = no_default, required: bool | None = None,
                 tags: Any = None):
        if required is None:
            required = default is no_default
        if default is no_default:
            default = None
        self.required = required
        self.default = default
        super().__init__(name=name, slug=name, tags=tags)

    def __repr__(self) -> str:
        return f"<Parameter: {self.name}>"

    def copy(self, name: str, **task_args: Any) -> Parameter:  # type: ignore[override]
        """A copy under a new name (a parameter's name is its identity)."""
        return super().copy(name=name, slug=name, **task_args)  # type: ignore[return-value]

    def __call__(self, *args: Any, **kwargs: Any) -> Parameter:  # type: ignore[override]
        # Parameters are added to the flow as they are, never copied.
        return self.bind(*args, **kwargs)  # type: ignore[return-value]

    def run(self) -> Any:
        params = context.get("parameters") or {}
        if self.required and self.name not in params:
            raise ValueError(f'Parameter "{self.name}" was required but not provided.')
        return params.get(self.name, self.default)


class DateTimeParameter(Parameter):
    """A parameter whose value (an ISO 8601 string or a datetime) becomes a pendulum
    DateTime; ``None`` stays ``None``.

    Example:
        >>> from cairnflow import Flow, DateTimeParameter, task
        >>> @task
        ... def year(when):
        ...     return when.year
        >>> with Flow("dates") as flow:
        ...     y = year(DateTimeParameter("when"))
        >>> flow.run(when="2024-05-01T12:00:00+00:00").result[y].result
        2024
    """

    def run(self) -> Any:
        import pendulum

        value = super().run()
        if value is None:
            return None
        if isinstance(value, str):
            return pendulum.parse(value)
        return pendulum.instance(value)
