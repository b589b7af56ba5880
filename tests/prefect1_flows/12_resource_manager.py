"""A resource manager: cleanup runs even when the body fails."""
from cairnflow import Flow, task, resource_manager

EVENTS = []


@resource_manager
class Connection:
    def __init__(self, url):
        self.url = url

    def setup(self):
        EVENTS.append("open")
        return {"url": self.url}

    def cleanup(self, conn):
        EVENTS.append("close")


@task
def query(conn):
    EVENTS.append("query")
    raise RuntimeError("query failed")


with Flow("resource") as flow:
    with Connection("sqlite://") as conn:
        query(conn)

state = flow.run()
print("RESULT:", EVENTS, state.is_failed())
