"""One month of interaction events: sessions of views, some turning into carts and purchases.

A view's category follows the user's taste and its item the items' appeal (quality, promotion,
novelty) within that category. The view becomes a cart with probability sqrt(p) and the cart a
purchase with probability sqrt(p), where p is the ground-truth purchase probability, so
P(purchase | view) is exactly p.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from driftloop.simulate.behaviour import MonthBehaviour
from driftloop.simulate.schema import (
    AGE_BANDS,
    CATEGORIES,
    DEVICES,
    EVENT_TYPES,
    INTERACTIONS_SCHEMA,
    REGIONS,
)
from driftloop.simulate.world import MICROS_PER_DAY, month_start_us

EVENTS_STREAM = 1
MEAN_EXTRA_VIEWS_PER_SESSION = 2.0
SESSION_MEDIAN_MINUTES = np.array([5.0, 14.0, 9.0])
MICROS_PER_MINUTE = 60_000_000


def generate_month(behaviour: MonthBehaviour) -> pa.Table:
    config, world = behaviour.config, behaviour.world
    users = world.users
    month = behaviour.state.month
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, EVENTS_STREAM, month]))
    month_start = month_start_us(config, month)
    month_end = month_start_us(config, month + 1)

    active = np.flatnonzero((users.join_month <= month) & (users.leave_month > month))
    window_start = np.maximum(users.first_visit_us[active], month_start)
    share_of_month = (month_end - window_start) / (month_end - month_start)
    weights = behaviour.activity(active) * share_of_month

    mean_views = 1.0 + MEAN_EXTRA_VIEWS_PER_SESSION
    n_sessions = int(np.ceil(config.events_per_month / mean_views * 1.1)) + 16
    session_user = active[rng.choice(len(active), size=n_sessions, p=weights / weights.sum())]
    session_views = 1 + rng.poisson(MEAN_EXTRA_VIEWS_PER_SESSION, size=n_sessions)
    session_device = behaviour.device(session_user)
    minutes = SESSION_MEDIAN_MINUTES[session_device] * rng.lognormal(0.0, 0.6, size=n_sessions)
    minutes = np.clip(minutes, 0.5, 240.0)
    lower = np.maximum(users.first_visit_us[session_user], month_start)
    length_us = np.minimum(minutes * MICROS_PER_MINUTE, 0.9 * (month_end - lower)).astype(np.int64)
    minutes = np.maximum(np.round(length_us / MICROS_PER_MINUTE, 2), 0.01)
    session_start = lower + (rng.random(n_sessions) * (month_end - lower - length_us)).astype(np.int64)

    view_session = np.repeat(np.arange(n_sessions), session_views)
    view_user = session_user[view_session]
    view_item = _draw_items(behaviour, view_user, rng)
    probability = behaviour.purchase_probability(view_user, view_item)

    rows_per_view = 1.0 + np.sqrt(probability).mean() + probability.mean()
    wanted_views = int(round(config.events_per_month / rows_per_view))
    sessions_kept = int(np.searchsorted(np.cumsum(session_views), wanted_views)) + 1
    views_kept = int(session_views[:sessions_kept].sum())
    view_session, view_user, view_item, probability = (
        array[:views_kept] for array in (view_session, view_user, view_item, probability)
    )

    step = np.sqrt(probability)
    carted = rng.random(views_kept) < step
    bought = carted & (rng.random(views_kept) < step)
    session_end = session_start[view_session] + length_us[view_session]
    view_time = session_start[view_session] + (rng.random(views_kept) * length_us[view_session]).astype(np.int64)
    cart_time = view_time + 1 + (rng.random(views_kept) * (session_end - view_time - 1)).astype(np.int64)
    purchase_time = cart_time + 1 + (rng.random(views_kept) * (session_end - cart_time - 1)).astype(np.int64)

    row_view = np.concatenate([np.arange(views_kept), np.flatnonzero(carted), np.flatnonzero(bought)])
    row_type = np.repeat(np.arange(3, dtype=np.int8), [views_kept, int(carted.sum()), int(bought.sum())])
    row_time = np.concatenate([view_time, cart_time[carted], purchase_time[bought]])
    order = np.lexsort((row_type, row_time))
    row_view, row_type, row_time = row_view[order], row_type[order], row_time[order]

    row_user = view_user[row_view]
    row_item = view_item[row_view]
    row_session = view_session[row_view]
    item_category = world.items.category[row_item]
    tenure_days = (row_time - users.first_visit_us[row_user]) / MICROS_PER_DAY
    columns = [
        users.ids.take(row_user),
        world.items.ids.take(row_item),
        _labels(EVENT_TYPES, row_type),
        pa.array(row_time, pa.int64()).cast(INTERACTIONS_SCHEMA.field("event_time").type),
        _labels(AGE_BANDS, users.age_band[row_user]),
        _labels(REGIONS, users.region[row_user]),
        _labels(DEVICES, session_device[row_session]),
        _labels(CATEGORIES, item_category),
        pa.array(behaviour.price[row_item], pa.float64()),
        pa.array(behaviour.discount[row_item], pa.float64()),
        pa.array(minutes[row_session], pa.float64()),
        pa.array(np.round(tenure_days, 4), pa.float64()),
    ]
    return pa.Table.from_arrays(columns, schema=INTERACTIONS_SCHEMA)


def _draw_items(behaviour: MonthBehaviour, view_user: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Category by the user's taste, then item by appeal within the category (inverse CDF)."""
    everyone = np.arange(len(behaviour.world.users))
    cumulative = np.cumsum(behaviour.category_probabilities(everyone), axis=1)
    cumulative[:, -1] = np.inf
    category = np.argmax(cumulative[view_user] > rng.random(len(view_user))[:, None], axis=1)

    items = behaviour.world.items
    weight = behaviour.item_view_weight
    by_category = np.lexsort((np.arange(len(items)), items.category))
    cumulative_weight = np.cumsum(weight[by_category])
    category_total = np.bincount(items.category, weights=weight, minlength=len(CATEGORIES))
    category_before = np.concatenate([[0.0], np.cumsum(category_total)[:-1]])
    category_last = np.cumsum(np.bincount(items.category, minlength=len(CATEGORIES))) - 1
    target = category_before[category] + rng.random(len(view_user)) * category_total[category]
    position = np.minimum(np.searchsorted(cumulative_weight, target, side="right"), category_last[category])
    return by_category[position]


def _labels(vocabulary: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    return pa.array(vocabulary, pa.string()).take(pa.array(codes))
