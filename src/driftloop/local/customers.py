"""Simulated customers for the simulated endpoint.

Customers of the shop's current month ask the endpoint for recommendations; each request goes to a
variant by weight and is answered by that variant's model through the real inference code; purchases
are drawn from the simulator's ground truth. As in a real shop, the endpoint's Data Capture records what
was served (``datacapture/<endpoint>/<variant>/yyyy/mm/dd/hh/``, each request tagged with an
``inferenceId``) and the shop sends its purchases, tagged with the same id, as purchase events
(``purchases/date=…/``); the A/B analysis joins the two (docs/feedback.md). Two sources of traffic:
a batch of each month's customers before the month's data is uploaded (the champion's conversion over
time), and live traffic while an A/B test splits the endpoint (``requests_per_hour`` of the local
runtime's clock, served for each stretch of simulated time the clock passes). Requests are stamped in
simulated time, spread evenly over the stretch they arrived in.
Each request carries the customer's purchases since the serving model was trained (``recent_items``,
from the months uploaded so far), as a shop's front end would send its recent-events log.
"""

from __future__ import annotations

import functools
import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftloop.adapters.endpoint import EndpointState
from driftloop.attribution import INFERENCE_ID_COLUMN
from driftloop.layout import WorkspaceLayout, purchase_events_key
from driftloop.local.adapters import SimulatedEndpoint
from driftloop.local.clock import VirtualClock
from driftloop.local.moto_store import put_object
from driftloop.local.template import ACCOUNT_ID
from driftloop.model.inference import MAX_RECENT_ITEMS
from driftloop.simulate import Scenario, Simulator, SimulatorConfig
from driftloop.simulate.world import month_start_us

K = 10
MAX_REQUESTS_PER_STRETCH = 5000


@functools.lru_cache(maxsize=4)
def simulator_for(config_json: str, scenario: str) -> Simulator:
    return Simulator(SimulatorConfig(**json.loads(config_json)), Scenario(scenario))


@functools.lru_cache(maxsize=8)
def purchases_since(config_json: str, scenario: str, trained_until: datetime, through_month: int
                    ) -> dict[str, tuple[str, ...]]:
    """Per customer, the items bought after ``trained_until`` in months ``0..through_month``, oldest
    first, the latest ``MAX_RECENT_ITEMS`` at most."""
    simulator = simulator_for(config_json, scenario)
    after = int(trained_until.timestamp() * 1_000_000)
    tables = [simulator.month(month) for month in range(through_month + 1)
              if month_start_us(simulator.config, month + 1) > after]
    if not tables:
        return {}
    table = pa.concat_tables(tables)
    bought = pc.and_(pc.equal(table["event_type"], "purchase"),
                     pc.greater(table["event_time"].cast(pa.int64()), after))
    table = table.filter(bought).sort_by([("user_id", "ascending"), ("event_time", "ascending")])
    recent: dict[str, list[str]] = {}
    for user, item in zip(table["user_id"].to_pylist(), table["item_id"].to_pylist(), strict=True):
        recent.setdefault(user, []).append(item)
    return {user: tuple(items[-MAX_RECENT_ITEMS:]) for user, items in recent.items()}


def arrival_times(requests: int, since: float, until: float) -> list[datetime]:
    """``requests`` arrivals spread evenly over epoch seconds ``[since, until)``.

    >>> [t.isoformat() for t in arrival_times(2, 0.0, 60.0)]
    ['1970-01-01T00:00:15+00:00', '1970-01-01T00:00:45+00:00']
    """
    step = (until - since) / max(requests, 1)
    return [datetime.fromtimestamp(since + (index + 0.5) * step, UTC) for index in range(requests)]


def simulate_requests(endpoint: SimulatedEndpoint, state: EndpointState, shop: dict[str, Any], requests: int,
                      rng: np.random.Generator, uploaded_through: int | None = None,
                      arrived: tuple[float, float] | None = None) -> pa.Table | None:
    """``requests`` customers served by the endpoint as it is now, with their purchases. Each request
    carries the customer's purchases since the variant's model was trained, from months
    ``0..uploaded_through`` (default: the months before the shop's current one). ``arrived``: the epoch
    seconds ``(since, until)`` the customers arrived in, evenly spread (default: all now)."""
    serving = [variant for variant in state.variants if variant.weight > 0]
    if requests <= 0 or not serving:
        return None
    config_json = json.dumps(shop["simulator"], sort_keys=True)
    simulator = simulator_for(config_json, shop["scenario"])
    month = int(shop["month"])
    through = month - 1 if uploaded_through is None else uploaded_through
    population = simulator.active_user_ids(month).to_numpy(zero_copy_only=False)
    users = rng.choice(population, size=requests, replace=True)
    shares = np.array([variant.weight for variant in serving], dtype=float)
    routed = rng.choice(len(serving), size=requests, p=shares / shares.sum())
    served_at = arrival_times(requests, *arrived) if arrived else [datetime.now(UTC)] * requests
    stamp = served_at[0].strftime("%Y%m%dT%H%M%S%f")
    request_ids = [f"{stamp}-{i:06d}" for i in range(requests)]
    items: list[list[str]] = [[] for _ in range(requests)]
    latency = np.zeros(requests)
    for index, variant in enumerate(serving):
        positions = np.flatnonzero(routed == index)
        if positions.size:
            recent = purchases_since(config_json, shop["scenario"], endpoint.trained_until(variant.model_name), through)
            started = time.perf_counter()
            lists = endpoint.serve(variant, [str(u) for u in users[positions]], K, recent,
                                   [served_at[i] for i in positions], [request_ids[i] for i in positions])
            latency[positions] = 1000 * (time.perf_counter() - started) / positions.size
            for position, ranked in zip(positions, lists, strict=True):
                items[position] = ranked
    pair_users = [str(users[i]) for i in range(requests) for _ in items[i]]
    pair_items = [item for ranked in items for item in ranked]
    probabilities = simulator.purchase_probability(pair_users, pair_items, month) if pair_items else np.array([])
    converted = np.zeros(requests, dtype=bool)
    purchased: list[str | None] = [None] * requests
    offset = 0
    for i, ranked in enumerate(items):
        bought = rng.random(len(ranked)) < probabilities[offset: offset + len(ranked)]
        offset += len(ranked)
        if bought.any():
            converted[i] = True
            purchased[i] = ranked[int(np.flatnonzero(bought)[0])]
    return pa.table({
        "request_id": request_ids,
        "user_id": pa.array([str(user) for user in users], pa.string()),
        "variant": pa.array([serving[index].name for index in routed], pa.string()),
        "items": pa.array(items, pa.list_(pa.string())),
        "served_at": pa.array(served_at, pa.timestamp("us", tz="UTC")),
        "purchased_item": pa.array(purchased, pa.string()),
        "converted": pa.array(converted, pa.bool_()),
        "latency_ms": pa.array(latency, pa.float64()),
        "error": pa.array(np.zeros(requests, dtype=bool), pa.bool_()),
    })


def serve_batch(workspace: Path, endpoint_name: str, bucket: str, s3: Any, requests: int,
                rng: np.random.Generator, arrived: tuple[float, float], only_when_split: bool = False,
                month_uploaded: bool = False) -> int:
    """Serve ``requests`` customers who arrived in epoch seconds ``arrived`` = (since, until) at the
    endpoint's current weights; returns how many were served. ``month_uploaded``: the shop's current
    month is already uploaded (its purchases count as recent). The endpoint's captured requests go into
    ``bucket`` as SageMaker writes them, straight into S3's store; the shop's purchase events with ``s3``."""
    shop_file = WorkspaceLayout(workspace).shop_file
    endpoint = SimulatedEndpoint(workspace, endpoint_name, s3, capture_bucket=bucket,
                                 capture_writer=functools.partial(put_object, ACCOUNT_ID))
    state = endpoint.describe()
    if state is None or not shop_file.exists():
        return 0
    if only_when_split and sum(variant.weight > 0 for variant in state.variants) < 2:
        return 0
    shop = json.loads(shop_file.read_text())
    uploaded_through = int(shop["month"]) if month_uploaded else None
    table = simulate_requests(endpoint, state, shop, requests, rng, uploaded_through, arrived)
    if table is None:
        return 0
    purchases = table.filter(table["converted"])
    if purchases.num_rows:
        buffer = io.BytesIO()
        pq.write_table(pa.table({
            "user_id": purchases["user_id"], "item_id": purchases["purchased_item"],
            "event_type": pa.array(["purchase"] * purchases.num_rows, pa.string()),
            "event_time": purchases["served_at"], INFERENCE_ID_COLUMN: purchases["request_id"],
        }), buffer)
        first = purchases["served_at"][0].as_py()
        key = purchase_events_key(first, f"part-{first:%H%M%S%f}-{purchases['request_id'][0].as_py()}")
        s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    return table.num_rows


class LiveTraffic:
    """Customers while an A/B test runs: ``requests_per_hour`` of simulated time, served for each stretch
    the clock passes, before anyone who waited through it wakes up (started and stopped by LocalAWS)."""

    def __init__(self, workspace: Path, endpoint_name: str, bucket: str, s3: Any, requests_per_hour: float,
                 clock: VirtualClock, seed: int = 0) -> None:
        self.workspace, self.endpoint_name, self.bucket, self.s3 = workspace, endpoint_name, bucket, s3
        self.requests_per_hour, self.clock = requests_per_hour, clock
        self.rng = np.random.default_rng(seed)
        self.served = 0

    def start(self) -> None:
        self.clock.add_listener(self.serve)

    def stop(self) -> None:
        self.clock.remove_listener(self.serve)

    def serve(self, since: float, until: float) -> None:
        requests = min(MAX_REQUESTS_PER_STRETCH, int(self.requests_per_hour * (until - since) / 3600))
        self.served += serve_batch(self.workspace, self.endpoint_name, self.bucket, self.s3, requests,
                                   self.rng, (since, until), only_when_split=True, month_uploaded=True)
