"""Running a graph: the flow runner, the task runner, executors, resume."""
