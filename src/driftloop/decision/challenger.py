"""The cheap challenger: where to cut an upload, and whether (and on how many users) a fit can afford it.

:func:`measure_challenger_gain` compares the champion with a model fitted on all the data before a cut;
this module holds what the backtest and the pipeline's decision step both need around it, so both measure
the same thing: the cut (:func:`challenger_cut`), the guard that sizes the fit to the memory and time at
hand from the data's counts before anything is fitted (:func:`plan_challenger_fit`), and the seeded user
sample it falls back to (:func:`sample_users`).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from driftloop.errors import InvalidInputError
from driftloop.model.data import USER, at_or_after, before, time_quantile
from driftloop.model.recommender import RecommenderConfig, estimated_memory_bytes, fitted_algorithm

# Fit time, measured with Recommender.fit on 0.1-1M synthetic interactions on 2 shared cores
# (about 3.5 us per row; numpy's inverse about 1e-10 s per m^3), doubled for a Lambda's smaller CPU share.
SECONDS_PER_ROW = 1e-5
SECONDS_PER_EASE_CUBE = 2e-10  # per m^3 of EASE's dense m x m algebra, m the modelled items
MIN_SAMPLE_USERS = 100  # fewer users than this would measure a different model than a retrain serves
_SAFETY = 0.9  # a sampled fit aims at 90% of the budget: the estimates are estimates


@dataclass(frozen=True)
class ChallengerCut:
    """Where an upload is cut: the challenger learns everything before ``cut``; both models are scored
    on the purchases in ``scored``.

    Parameters
    ----------
    cut
        The instant (the upload's start, or its median event time).
    learned
        The upload's rows before the cut that the challenger also learns (empty when cut at the start).
    scored
        The upload's rows at or after the cut.
    """

    cut: datetime
    learned: pa.Table
    scored: pa.Table


def challenger_cut(upload: pa.Table, period_start: datetime | None) -> ChallengerCut | None:
    """The cut for an upload (normalised interactions).

    When the champion has already missed data before the upload, pass the upload's ``period_start``:
    the challenger is fitted on everything before it, i.e. what a retrain at the previous trigger would
    serve. On the first upload after training there is nothing newer than the champion before it
    (``period_start=None``): the cut is the upload's median event time, so the challenger also learns
    the upload's first half and both are scored on its second half. ``None`` when that first half is
    empty (every event at one instant): nothing to learn, no challenger.

    Example
    -------
    >>> from datetime import datetime, timedelta, timezone
    >>> day = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> upload = pa.table({"user_id": ["a", "b", "c", "d"], "item_id": ["x"] * 4,
    ...                    "event_time": pa.array([day + timedelta(days=n) for n in range(4)],
    ...                                           pa.timestamp("us", tz="UTC"))})
    >>> split = challenger_cut(upload, None)
    >>> split.cut.day, split.learned.num_rows, split.scored.num_rows
    (3, 2, 2)
    >>> challenger_cut(upload, day).learned.num_rows, challenger_cut(upload, day).scored.num_rows
    (0, 4)
    """
    if upload.num_rows == 0:
        return None
    if period_start is not None:
        return ChallengerCut(period_start, upload.slice(0, 0), upload)
    cut = time_quantile(upload, 0.5)
    learned = before(upload, cut)
    if learned.num_rows == 0:
        return None
    return ChallengerCut(cut, learned, at_or_after(upload, cut))


@dataclass(frozen=True)
class ChallengerFitPlan:
    """How the challenger is fitted, decided from the data's counts before fitting.

    Parameters
    ----------
    user_share
        1.0: on all the data; in (0, 1): on a seeded sample of that share of the users (both models are
        then scored on the sampled users only); ``None``: not fitted, see ``reason``.
    algorithm
        What the fit would run (``fitted_algorithm``: EASE up to ``max_items`` items, else item-kNN).
    estimated_bytes, estimated_seconds
        Peak memory and time of the fit at ``user_share`` (at all users when not fitted).
    memory_budget_bytes, seconds_budget
        What the fit may use.
    rows, users, items
        The counts the estimates come from (all the data before the cut).
    reason
        ``"challenger not measured: ..."`` when not fitted, else ``None``.
    """

    user_share: float | None
    algorithm: str
    estimated_bytes: int
    estimated_seconds: float
    memory_budget_bytes: int
    seconds_budget: float
    rows: int
    users: int
    items: int
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _estimate(config: RecommenderConfig, rows: int, users: int, items: int) -> tuple[str, int, float]:
    algorithm = fitted_algorithm(config, items)
    memory = estimated_memory_bytes(config, rows, users, items)[algorithm]
    seconds = rows * SECONDS_PER_ROW
    if algorithm == "ease":
        seconds += min(items, config.max_items) ** 3 * SECONDS_PER_EASE_CUBE
    return algorithm, memory, seconds


def plan_challenger_fit(
    config: RecommenderConfig,
    *,
    rows: int,
    users: int,
    items: int,
    memory_budget_bytes: int,
    seconds_budget: float,
    min_users: int = MIN_SAMPLE_USERS,
) -> ChallengerFitPlan:
    """Size the challenger's fit to the memory and time at hand, from the data's counts.

    The estimates are the recommender's own (``estimated_memory_bytes``, the check a training job makes
    against ``memory_limit_gb``) and a time model (``SECONDS_PER_ROW`` per row, plus
    ``SECONDS_PER_EASE_CUBE`` x m^3 for EASE). When all the data does not fit, a share of the users is
    chosen so that the per-row and per-user parts do (the items are kept at their full count: a user
    sample drops few items, and EASE's m x m part does not shrink with users). When even a sample of
    ``min_users`` users would not fit, or the item-bound part alone exceeds the budget, nothing is
    fitted and ``reason`` says why.

    Parameters
    ----------
    config
        The training job's recommender configuration.
    rows, users, items
        Counts of the data the challenger would be fitted on.
    memory_budget_bytes, seconds_budget
        What the fit may use (> 0).
    min_users
        The smallest sample worth fitting.

    Example
    -------
    >>> config = RecommenderConfig()
    >>> plan_challenger_fit(config, rows=100_000, users=1_000, items=1_600,
    ...                     memory_budget_bytes=1 << 30, seconds_budget=300).user_share
    1.0
    >>> plan = plan_challenger_fit(config, rows=50_000_000, users=2_000_000, items=8_000,
    ...                            memory_budget_bytes=3 << 30, seconds_budget=300)
    >>> 0 < plan.user_share < 0.2, plan.estimated_bytes < 3 << 30, plan.estimated_seconds < 300
    (True, True, True)
    >>> plan_challenger_fit(config, rows=100_000, users=1_000, items=9_000,
    ...                     memory_budget_bytes=1 << 30, seconds_budget=300).reason[:43]
    'challenger not measured: ease on 9000 items'
    """
    if memory_budget_bytes <= 0 or not np.isfinite(seconds_budget) or seconds_budget <= 0:
        raise InvalidInputError(
            f"challenger budget must be > 0 bytes and seconds, not {memory_budget_bytes}, {seconds_budget}"
        )
    algorithm, memory, seconds = _estimate(config, rows, users, items)
    plan = ChallengerFitPlan(
        1.0, algorithm, memory, seconds, int(memory_budget_bytes), float(seconds_budget), rows, users, items
    )
    if memory <= memory_budget_bytes and seconds <= seconds_budget:
        return plan
    # The estimates are affine in the share of users kept: fixed (item-bound) + share x the rest.
    _, fixed_memory, fixed_seconds = _estimate(config, 0, 0, items)
    budget = f"the budget of {memory_budget_bytes / 2**30:.2f} GB and {seconds_budget:.0f} s"
    if fixed_memory >= memory_budget_bytes or fixed_seconds >= seconds_budget:
        return replace(plan, user_share=None, reason=(
            f"challenger not measured: {algorithm} on {items} items alone needs about {fixed_memory / 2**30:.2f} GB "
            f"and {fixed_seconds:.0f} s, over {budget}, whatever share of the users is sampled"))
    share = _SAFETY * min(
        (memory_budget_bytes - fixed_memory) / max(memory - fixed_memory, 1),
        (seconds_budget - fixed_seconds) / max(seconds - fixed_seconds, 1e-9),
        1.0,
    )
    if share * users < min_users:
        return replace(plan, user_share=None, reason=(
            f"challenger not measured: {rows} interactions of {users} users need about {memory / 2**30:.2f} GB "
            f"and {seconds:.0f} s, and a sample within {budget} would keep fewer than {min_users} users"))
    return replace(plan, user_share=share, estimated_bytes=int(fixed_memory + share * (memory - fixed_memory)),
                   estimated_seconds=fixed_seconds + share * (seconds - fixed_seconds))


def sample_users(table: pa.Table, share: float, seed: int = 0) -> pa.Table:
    """The rows of a seeded sample of ``share`` of the users: a user is kept when a hash of the seed and
    the user id falls below ``share``, so the same users are kept however the rows are split or ordered,
    and a step run again keeps the same ones.

    Example
    -------
    >>> table = pa.table({"user_id": [f"u{n}" for n in range(1000)], "item_id": ["x"] * 1000})
    >>> kept = sample_users(table, 0.25)
    >>> 200 < kept.num_rows < 300, sample_users(table, 0.25).equals(kept), sample_users(table, 1.0) is table
    (True, True, True)
    """
    if not 0 < share <= 1:
        raise InvalidInputError(f"user share must be in (0, 1], not {share}")
    if share == 1:
        return table
    users = table.column(USER).combine_chunks().dictionary_encode()
    names = users.dictionary.to_pylist()
    salt = str(seed).encode()
    fractions = np.fromiter(
        (int.from_bytes(hashlib.blake2b(salt + name.encode(), digest_size=8).digest(), "big") / 2**64
         for name in names),
        dtype=float, count=len(names),
    )
    keep = fractions[users.indices.to_numpy(zero_copy_only=False)] < share
    return table.filter(pa.array(keep))
