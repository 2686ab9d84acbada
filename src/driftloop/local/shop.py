"""The simulated shop behind the local runtime: seeding the first champion, monthly uploads, the demo."""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from driftloop import layout
from driftloop.adapters.ledger import Ledger
from driftloop.layout import WorkspaceLayout, s3_uri
from driftloop.local.customers import serve_batch
from driftloop.local.runner import Printer, Runner
from driftloop.local.runtime import LocalAWS
from driftloop.simulate import Scenario, Simulator, SimulatorConfig
from driftloop.simulate.world import month_start_us


@dataclass(frozen=True)
class Shop:
    """The simulator a workspace was seeded with, and the month it has reached."""

    config: SimulatorConfig
    scenario: Scenario
    month: int

    def simulator(self) -> Simulator:
        return Simulator(self.config, self.scenario)

    def to_dict(self) -> dict[str, Any]:
        return {"simulator": self.config.to_dict(), "scenario": self.scenario.value, "month": self.month}

    @classmethod
    def load(cls, workspace: Path) -> Shop | None:
        path = WorkspaceLayout(workspace).shop_file
        if not path.exists():
            return None
        document = json.loads(path.read_text())
        return cls(SimulatorConfig(**document["simulator"]), Scenario(document["scenario"]), int(document["month"]))

    def save(self, workspace: Path) -> None:
        WorkspaceLayout(workspace).shop_file.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))


def data_bucket(world: LocalAWS) -> str:
    return world.app.environment["DATA_BUCKET"]


def incoming_key(world: LocalAWS, name: str) -> str:
    return layout.incoming_key(world.app.environment["INCOMING_PREFIX"], name)


def upload_bytes(world: LocalAWS, key: str, body: bytes) -> dict[str, Any]:
    """A plain PutObject: S3 itself emits the Object Created event the template's rules watch."""
    return world.client("s3").put_object(Bucket=data_bucket(world), Key=key, Body=body)


def upload_month(world: LocalAWS, shop: Shop, month: int, advance_clock: bool = True) -> str:
    """Month ``month`` of the shop: the local runtime's clock moves to the month's end, its customers are
    served by the endpoint as it stands over the month (their feedback is the champion's conversion that
    month), then their interactions are uploaded under the incoming prefix. Without ``advance_clock`` the
    customers stay in the shop's current month and the clock where it is (a month of data that does not
    reflect who comes next)."""
    simulator = shop.simulator()
    arrived_since = world.clock.now()
    if advance_clock:
        Shop(shop.config, shop.scenario, month).save(world.workspace.root)
        world.clock.advance_to(month_start_us(shop.config, month + 1) / 1e6)
        arrived_since = max(arrived_since, month_start_us(shop.config, month) / 1e6)
    environment = world.app.environment
    serve_batch(world.workspace.root, environment["ENDPOINT_NAME"], environment["DATA_BUCKET"],
                world.client("s3"), world.profile.requests_per_month,
                np.random.default_rng([shop.config.seed, month]), (arrived_since, world.clock.now()))
    buffer = io.BytesIO()
    pq.write_table(simulator.month(month), buffer)
    key = incoming_key(world, f"{simulator.month_label(month)}.parquet")
    upload_bytes(world, key, buffer.getvalue())
    return key


def move_to_month(world: LocalAWS, shop: Shop, month: int) -> Shop:
    """The shop's customers now live in ``month``: saved, and the local runtime's clock moves to its start."""
    moved = Shop(shop.config, shop.scenario, month)
    moved.save(world.workspace.root)
    world.clock.advance_to(month_start_us(shop.config, month) / 1e6)
    return moved


def seed(world: LocalAWS, runner: Runner, shop: Shop, printer: Printer) -> dict[str, Any]:
    """Launch the original model: month 0 goes through the pipeline's first-deployment branch."""
    shop.save(world.workspace.root)
    key = upload_month(world, shop, 0)
    printer(f"uploaded the original data (month 0) to {s3_uri(data_bucket(world), key)}")
    runner.wait()
    return latest_run(world)


def latest_run(world: LocalAWS) -> dict[str, Any]:
    runs = ledger(world).runs(model_name(world))
    return max(runs, key=lambda run: run["finished_at"]) if runs else {}


def ledger(world: LocalAWS) -> Ledger:
    environment = world.app.environment
    return Ledger(world.client("dynamodb"), environment["LEDGER_TABLE"])


def model_name(world: LocalAWS) -> str:
    return world.app.environment["MODEL_NAME"]


def reset_workspace(path: Path) -> None:
    """Only a folder driftloop made (it holds world.json or s3/) is ever removed."""
    if path.exists():
        if not WorkspaceLayout(path).is_workspace():
            raise FileExistsError(f"{path} exists and is not a driftloop workspace; choose another --workspace")
        shutil.rmtree(path)
