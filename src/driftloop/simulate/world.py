"""The static world drawn once per seed: every user and item that will ever exist, with timelines.

Users occupy ``n_users`` slots; at the start of each month (month 0 included) a slot's user churns
with probability ``monthly_churn`` and a newcomer arrives in the slot during that month. Tenures of
the users already there at month 0 follow the matching exponential law, so under a constant
population the tenure mix of every month is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from driftloop.simulate.config import Scenario, SimulatorConfig
from driftloop.simulate.schema import AGE_BANDS, CATEGORIES, DEVICES, REGIONS

LATENT_DIMENSIONS = 8
ACTIVITY_SIGMA = 0.4
MIN_CHURN_FOR_TENURE = 1 / 120
MICROS_PER_DAY = 86_400_000_000

INITIAL_AGE_MIX = np.array([0.12, 0.25, 0.24, 0.21, 0.18])
SHIFTED_AGE_MIX = np.array([0.32, 0.32, 0.18, 0.11, 0.07])
AGE_ACTIVITY_TILT = np.array([0.6, 0.3, 0.0, -0.3, -0.6])
AGE_PRICE_SENSITIVITY = np.array([0.9, 0.7, 0.5, 0.4, 0.4])
REGION_MIX = np.array([0.24, 0.22, 0.20, 0.20, 0.14])
DEVICE_MIX = np.array([0.45, 0.45, 0.10])
CATEGORY_MEDIAN_PRICE = np.array([120, 60, 90, 250, 40, 35, 110, 45, 300, 18, 50, 30], dtype=float)

WORLD_STREAM = 0
USER_ID_PREFIX, USER_ID_DIGITS = "u", 7
ITEM_ID_PREFIX, ITEM_ID_DIGITS = "i", 6


@dataclass(frozen=True)
class Users:
    ids: pa.StringArray
    age_band: np.ndarray
    region: np.ndarray
    device: np.ndarray
    mobile_switch: np.ndarray
    first_visit_us: np.ndarray
    join_month: np.ndarray
    leave_month: np.ndarray
    activity: np.ndarray
    price_sensitivity: np.ndarray
    shared_taste: np.ndarray
    winter_taste: np.ndarray
    summer_taste: np.ndarray
    future_taste: np.ndarray
    vector_now: np.ndarray
    vector_future: np.ndarray

    def __len__(self) -> int:
        return len(self.age_band)


@dataclass(frozen=True)
class Items:
    ids: pa.StringArray
    category: np.ndarray
    base_price: np.ndarray
    quality: np.ndarray
    vector: np.ndarray
    launch_month: np.ndarray

    def __len__(self) -> int:
        return len(self.category)


@dataclass(frozen=True)
class World:
    users: Users
    items: Items


def month_start_us(config: SimulatorConfig, month: int) -> int:
    start = (np.datetime64(config.start_month, "M") + month).astype("datetime64[us]")
    return int(start.astype(np.int64))


def build_world(config: SimulatorConfig, scenario: Scenario) -> World:
    """Everything random that does not depend on the month, drawn in a fixed order from the seed.

    Draws do not depend on the scenario, so scenarios share users, tastes and items; the scenario
    only chooses the mixes newcomers are drawn from and whether new items launch.
    """
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, WORLD_STREAM]))
    age_bias = rng.normal(0.0, 0.6, size=(len(AGE_BANDS), len(CATEGORIES)))
    region_bias = rng.normal(0.0, 0.3, size=(len(REGIONS), len(CATEGORIES)))
    users = _build_users(config, scenario, rng, age_bias, region_bias)
    items = _build_items(config, scenario, rng)
    return World(users=users, items=items)


def _slot_timelines(config: SimulatorConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(join_month, leave_month, pre_existing) per user: pre-existing users first, then newcomers
    ordered by join month. Month 0 has newcomers too, as every month of a stationary shop does."""
    n_slots, horizon = config.n_users, config.horizon_months
    churn = rng.random((n_slots, horizon + 1)) < config.monthly_churn
    newcomer_month, newcomer_slot = np.nonzero(churn.T)
    first_churn = np.where(churn.any(axis=1), churn.argmax(axis=1), horizon + 1)
    staying = np.flatnonzero(first_churn > 0)
    slots = np.concatenate([staying, newcomer_slot])
    join = np.concatenate([np.zeros(len(staying), dtype=np.int64), newcomer_month])
    pre_existing = np.arange(len(slots)) < len(staying)
    by_slot = np.lexsort((join, slots))
    leave = np.full(len(join), horizon + 1, dtype=np.int64)
    same_slot_next = slots[by_slot][1:] == slots[by_slot][:-1]
    leave[by_slot[:-1][same_slot_next]] = join[by_slot[1:][same_slot_next]]
    return join, leave, pre_existing


def _build_users(
    config: SimulatorConfig,
    scenario: Scenario,
    rng: np.random.Generator,
    age_bias: np.ndarray,
    region_bias: np.ndarray,
) -> Users:
    join, leave, pre_existing = _slot_timelines(config, rng)
    count = len(join)
    n_categories = len(CATEGORIES)

    progress = join / config.horizon_months if scenario.moves_population else np.zeros(count)
    shift = config.population_shift * progress
    age_mix = (1.0 - shift)[:, None] * INITIAL_AGE_MIX + shift[:, None] * SHIFTED_AGE_MIX
    age_band = _inverse_cdf(age_mix, rng.random(count))
    region = rng.choice(len(REGIONS), size=count, p=REGION_MIX)
    device = rng.choice(len(DEVICES), size=count, p=DEVICE_MIX)
    mobile_switch = rng.random(count)

    mean_tenure_us = 30.44 * MICROS_PER_DAY / max(config.monthly_churn, MIN_CHURN_FOR_TENURE)
    initial_tenure_us = rng.exponential(mean_tenure_us, size=count)
    starts = np.array([month_start_us(config, month) for month in range(config.horizon_months + 2)])
    join_offset_us = rng.random(count) * (starts[join + 1] - starts[join])
    first_visit = np.where(pre_existing, starts[0] - initial_tenure_us, starts[join] + join_offset_us)

    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, size=count)
    price_sensitivity = AGE_PRICE_SENSITIVITY[age_band] * rng.lognormal(0.0, 0.3, size=count)
    shared_taste = age_bias[age_band] + region_bias[region]
    winter_taste = rng.normal(0.0, 1.3, size=(count, n_categories))
    summer_taste = 0.3 * winter_taste + np.sqrt(1 - 0.3**2) * rng.normal(0.0, 1.3, size=(count, n_categories))
    future_taste = rng.normal(0.0, 1.3, size=(count, n_categories))
    scale = 0.6 / np.sqrt(LATENT_DIMENSIONS)
    vector_now = rng.normal(0.0, scale, size=(count, LATENT_DIMENSIONS))
    vector_future = rng.normal(0.0, scale, size=(count, LATENT_DIMENSIONS))

    return Users(
        ids=_ids(USER_ID_PREFIX, USER_ID_DIGITS, count),
        age_band=age_band,
        region=region,
        device=device,
        mobile_switch=mobile_switch,
        first_visit_us=first_visit.astype(np.int64),
        join_month=join,
        leave_month=leave,
        activity=activity,
        price_sensitivity=price_sensitivity,
        shared_taste=shared_taste,
        winter_taste=winter_taste,
        summer_taste=summer_taste,
        future_taste=future_taste,
        vector_now=vector_now,
        vector_future=vector_future,
    )


def _build_items(config: SimulatorConfig, scenario: Scenario, rng: np.random.Generator) -> Items:
    per_month = int(round(config.new_item_rate * config.n_items))
    launch_months = range(config.new_items_from_month, config.horizon_months + 1)
    launch = np.concatenate(
        [np.zeros(config.n_items, dtype=np.int64)] + [np.full(per_month, month) for month in launch_months]
    )
    count = len(launch)
    n_categories = len(CATEGORIES)
    category = np.concatenate([np.arange(n_categories), rng.integers(0, n_categories, size=count - n_categories)])
    base_price = np.round(CATEGORY_MEDIAN_PRICE[category] * rng.lognormal(0.0, 0.5, size=count), 2)
    quality = rng.normal(0.0, 0.6, size=count)
    vector = rng.normal(0.0, 1.0, size=(count, LATENT_DIMENSIONS))
    kept = config.n_items if not scenario.moves_population else count
    return Items(
        ids=_ids(ITEM_ID_PREFIX, ITEM_ID_DIGITS, kept),
        category=category[:kept],
        base_price=np.maximum(base_price[:kept], 0.99),
        quality=quality[:kept],
        vector=vector[:kept],
        launch_month=launch[:kept],
    )


def _inverse_cdf(probabilities: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Row-wise categorical draw: index of the first cumulative probability above each uniform."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = np.inf
    return np.argmax(cumulative > uniforms[:, None], axis=1)


def _ids(prefix: str, digits: int, count: int) -> pa.StringArray:
    """``prefix`` + the zero-padded position: an id's number is its index in the world's arrays."""
    return pa.array([f"{prefix}{index:0{digits}d}" for index in range(count)], pa.string())
