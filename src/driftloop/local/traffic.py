"""Simulated customers for the simulated endpoint: requests routed by variant weight, purchases drawn
from the simulator's ground truth, written to the feedback log the A/B analysis reads."""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from driftloop.adapters.endpoint import EndpointState
from driftloop.simulate import Scenario, Simulator, SimulatorConfig

K = 10


@functools.lru_cache(maxsize=4)
def simulator_for(config_json: str, scenario: str) -> Simulator:
    return Simulator(SimulatorConfig(**json.loads(config_json)), Scenario(scenario))


def serve_simulated_traffic(endpoint: Any, state: EndpointState, world: dict[str, Any], s3: Any,
                            bucket: str) -> str | None:
    """One bake period of traffic at the endpoint's current weights; returns the feedback object key."""
    from driftloop.local.adapters import write_feedback

    requests = int(world.get("requests_per_bake", 0))
    serving = [variant for variant in state.variants if variant.weight > 0]
    if requests <= 0 or not serving:
        return None
    simulator = simulator_for(json.dumps(world["simulator"], sort_keys=True), world["scenario"])
    month = int(world["month"])
    seed = int(hashlib.sha256(f"{world['simulator']['seed']}/{month}/{state.config_name}/{state.weights()}"
                              .encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    population = simulator.active_user_ids(month).to_numpy(zero_copy_only=False)
    users = rng.choice(population, size=requests, replace=True)
    shares = np.array([variant.weight for variant in serving], dtype=float)
    routed = rng.choice(len(serving), size=requests, p=shares / shares.sum())
    items: list[list[str]] = [[] for _ in range(requests)]
    for index, variant in enumerate(serving):
        positions = np.flatnonzero(routed == index)
        if positions.size:
            lists = endpoint.recommend_batch(variant.model_name, [str(u) for u in users[positions]], K)
            for position, ranked in zip(positions, lists, strict=True):
                items[position] = ranked
    pair_users = [str(users[i]) for i in range(requests) for _ in items[i]]
    pair_items = [item for ranked in items for item in ranked]
    probabilities = simulator.purchase_probability(pair_users, pair_items, month) if pair_items else np.array([])
    converted, purchased = np.zeros(requests, dtype=bool), [None] * requests
    offset = 0
    for i, ranked in enumerate(items):
        p = probabilities[offset: offset + len(ranked)]
        offset += len(ranked)
        bought = rng.random(len(ranked)) < p
        if bought.any():
            converted[i] = True
            purchased[i] = ranked[int(np.flatnonzero(bought)[0])]
    now = datetime.now(UTC)
    table = pa.table({
        "request_id": [f"{seed:08x}-{i:06d}" for i in range(requests)],
        "user_id": pa.array([str(user) for user in users], pa.string()),
        "variant": pa.array([serving[index].name for index in routed], pa.string()),
        "items": pa.array(items, pa.list_(pa.string())),
        "served_at": pa.array([now] * requests, pa.timestamp("us", tz="UTC")),
        "purchased_item": pa.array(purchased, pa.string()),
        "converted": pa.array(converted, pa.bool_()),
        "latency_ms": pa.array(rng.gamma(4.0, 5.0, size=requests), pa.float64()),
        "error": pa.array(np.zeros(requests, dtype=bool), pa.bool_()),
    })
    return write_feedback(s3, bucket, endpoint.name, table, now, len(state.variants) * 1000 + seed % 1000)
