"""The nightly report: the flow of the README's "a run failed at 3 a.m." story.

It fetches the day's orders from three regions, totals each region, and writes
a report. One region sends an order without an "amount", and `total` has a bug:
it assumes every order has one. Fix it (`order.get("amount", 0)`) and resume:
the fetches, which are slow and already done, do not run again.
"""

import time

from cairnflow import Flow, Parameter, get_run_logger, task

ORDERS = {
    "north": [{"id": 1, "amount": 120}, {"id": 2, "amount": 80}],
    "south": [{"id": 3, "amount": 200}, {"id": 4}],  # no amount: a refunded order
    "west": [{"id": 5, "amount": 50}],
}


@task(max_retries=2, retry_delay=0.1)
def fetch(region: str) -> list[dict]:
    """Download one region's orders (slow: an API with rate limits)."""
    time.sleep(0.2)
    orders = ORDERS[region]
    get_run_logger().info("fetched %d orders from %s", len(orders), region)
    return orders


@task
def total(orders: list[dict]) -> int:
    return sum(order["amount"] for order in orders)


@task
def report(day: str, totals: list[int]) -> str:
    text = f"{day}: {sum(totals)} across {len(totals)} regions"
    get_run_logger().info(text)
    return text


with Flow("nightly-report") as flow:
    day = Parameter("day", default="2026-11-23")
    totals = total.map(fetch.map(["north", "south", "west"]))
    report(day, totals)
