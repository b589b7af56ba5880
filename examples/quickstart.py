"""Quickstart: a durable pipeline that fails once, then resumes where it stopped.

    cairnflow run examples/quickstart.py     # fails at `load`: the warehouse is "down"
    cairnflow runs show last                 # what ran, what failed, and why
    cairnflow resume last                    # finishes: nothing that succeeded runs again
    cairnflow runs result last load-1        # the checkpointed result

The outage is simulated: `load` fails the first time it runs for a given
$CAIRNFLOW_HOME and succeeds after that, as a flaky service would.
"""

import json
import os
from datetime import timedelta
from pathlib import Path

from cairnflow import Flow, Parameter, get_run_logger, task

HOME = Path(os.environ.get("CAIRNFLOW_HOME", Path.home() / ".cairnflow"))


@task
def extract(count: int) -> list[dict]:
    """Pretend to download `count` orders."""
    get_run_logger().info("extracted %d orders", count)
    return [{"id": i, "amount": 10 * i + 5} for i in range(count)]


@task(max_retries=2, retry_delay=timedelta(seconds=0.5))
def add_tax(order: dict) -> dict:
    """One mapped child per order."""
    return {**order, "total": round(order["amount"] * 1.2, 2)}


@task
def load(orders: list[dict]) -> dict:
    """Write the orders to the "warehouse" (a JSON file under $CAIRNFLOW_HOME)."""
    ready = HOME / "quickstart-warehouse-is-up"
    if not ready.exists():
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.touch()
        raise ConnectionError("warehouse unreachable (simulated outage: resume to retry)")
    target = HOME / "quickstart-orders.json"
    target.write_text(json.dumps(orders, indent=2))
    summary = {"orders": len(orders), "revenue": sum(o["total"] for o in orders)}
    get_run_logger().info("loaded %d orders into %s", len(orders), target)
    return summary


with Flow("quickstart") as flow:
    count = Parameter("count", default=5)
    orders = add_tax.map(extract(count))
    summary = load(orders)


if __name__ == "__main__":
    state = flow.run()
    print(state, state.result[summary].result)
