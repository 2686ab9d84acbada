"""How customers behave in a given month: category tastes, item appeal and purchase probability.

Every mechanism reads a *drift clock*: the real month for what the scenario moves, month 0 for
what it keeps, so a kept mechanism behaves exactly as in month 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftloop.simulate.config import Scenario, SimulatorConfig
from driftloop.simulate.schema import CATEGORIES, DEVICES, SUMMER_CATEGORIES, WINTER_CATEGORIES
from driftloop.simulate.world import AGE_ACTIVITY_TILT, CATEGORY_MEDIAN_PRICE, World

PURCHASE_INTERCEPT = -5.5
PROMO_PURCHASE_GAIN = 0.8
PROMO_VIEW_GAIN = 1.5
NOVELTY_GAIN = 1.0
DISCOUNT_LEVELS = np.array([0.1, 0.15, 0.2, 0.3])
PROMO_STREAM = 2
SEASON_SIGN = np.array(
    [1.0 if name in WINTER_CATEGORIES else -1.0 if name in SUMMER_CATEGORIES else 0.0 for name in CATEGORIES]
)
MOBILE = DEVICES.index("mobile")
_CHUNK = 262_144


@dataclass(frozen=True)
class MonthState:
    """The month's position on each drift schedule."""

    month: int
    winter_weight: float
    taste_drift_angle: float
    population_progress: float
    price_factor: float


def month_state(config: SimulatorConfig, scenario: Scenario, month: int) -> MonthState:
    taste_clock = month if scenario.moves_tastes else 0
    population_clock = month if scenario.moves_population else 0
    calendar_month = (np.datetime64(config.start_month, "M") + taste_clock).astype(int) % 12
    horizon = config.horizon_months
    return MonthState(
        month=month,
        winter_weight=float((1.0 + np.cos(2.0 * np.pi * calendar_month / 12.0)) / 2.0),
        taste_drift_angle=float(np.pi / 2.0 * config.taste_drift * taste_clock / horizon),
        population_progress=population_clock / horizon,
        price_factor=1.0 + config.inflation * population_clock / horizon,
    )


class MonthBehaviour:
    """Tastes, prices and promotions of one month, with vectorised probability look-ups."""

    def __init__(self, world: World, config: SimulatorConfig, scenario: Scenario, month: int) -> None:
        self.world = world
        self.config = config
        self.state = month_state(config, scenario, month)
        users, items = world.users, world.items
        season_angle = np.pi / 2.0 * config.seasonal_taste_swing * (1.0 - self.state.winter_weight)
        drift = self.state.taste_drift_angle
        self._taste_weights = (
            np.cos(drift) * np.cos(season_angle),
            np.cos(drift) * np.sin(season_angle),
            np.sin(drift),
        )
        self.seasonal_boost = config.seasonal_strength * SEASON_SIGN * (2.0 * self.state.winter_weight - 1.0)
        self.user_vector = np.cos(drift) * users.vector_now + np.sin(drift) * users.vector_future

        self.available = items.launch_month <= month
        self.discount = self._promotions()
        self.price = np.round(items.base_price * self.state.price_factor, 2)
        months_on_sale = month - items.launch_month
        self.novelty = np.where(
            (items.launch_month > 0) & self.available, NOVELTY_GAIN * np.exp(-months_on_sale / 2.0), 0.0
        )
        self.log_price_ratio = np.log(self.price * (1.0 - self.discount) / CATEGORY_MEDIAN_PRICE[items.category])
        self.item_purchase_term = items.quality + PROMO_PURCHASE_GAIN * self.discount + self.novelty
        self.item_view_weight = np.where(
            self.available, np.exp(items.quality + PROMO_VIEW_GAIN * self.discount + self.novelty), 0.0
        )

        winter, summer, future = self._taste_weights
        self.category_logit_table = (
            users.shared_taste
            + winter * users.winter_taste
            + summer * users.summer_taste
            + future * users.future_taste
            + self.seasonal_boost
        )
        self._user_side = np.column_stack([self.user_vector, -users.price_sensitivity])
        self._item_side = np.column_stack([items.vector, self.log_price_ratio])

    def _promotions(self) -> np.ndarray:
        """Discount per item: ``promo_rate`` of the items on sale, one drawn from each band of
        equally appealing items, with the discount levels spread evenly over the bands. Stratifying
        keeps the month-to-month share of discounted events steady, as a stationary shop should."""
        items = self.world.items
        rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, PROMO_STREAM, self.state.month]))
        discount = np.zeros(len(items))
        on_sale = np.flatnonzero(self.available)
        promoted = int(round(self.config.promo_rate * len(on_sale)))
        if promoted == 0:
            return discount
        by_appeal = on_sale[np.argsort(-items.quality[on_sale], kind="stable")]
        edges = np.linspace(0, len(by_appeal), promoted + 1).astype(np.int64)
        picks = edges[:-1] + (rng.random(promoted) * np.diff(edges)).astype(np.int64)
        level = (rng.integers(len(DISCOUNT_LEVELS)) + np.arange(promoted)) % len(DISCOUNT_LEVELS)
        discount[by_appeal[picks]] = DISCOUNT_LEVELS[level]
        return discount

    def category_logits(self, user_index: np.ndarray) -> np.ndarray:
        """(users, categories) log-preference, the same scale for browsing and buying."""
        return self.category_logit_table[user_index]

    def category_probabilities(self, user_index: np.ndarray) -> np.ndarray:
        logits = self.category_logits(user_index)
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        return weights / weights.sum(axis=1, keepdims=True)

    def purchase_probability(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """P(purchase | the user sees the item) for aligned index pairs; 0 for items not on sale.

        logit = intercept + category taste + user·item latent match + item appeal (quality,
        promotion, novelty) - the user's price sensitivity × log(paid price / category median).
        """
        result = np.empty(len(user_index))
        for start in range(0, len(user_index), _CHUNK):
            users = user_index[start : start + _CHUNK]
            items = item_index[start : start + _CHUNK]
            logit = (
                PURCHASE_INTERCEPT
                + self.category_logit_table[users, self.world.items.category[items]]
                + np.einsum("ij,ij->i", self._user_side[users], self._item_side[items])
                + self.item_purchase_term[items]
            )
            result[start : start + _CHUNK] = np.where(self.available[items], _sigmoid(logit), 0.0)
        return result

    def best_purchase_probability(self, user_index: np.ndarray) -> np.ndarray:
        """Per user, the highest purchase probability over the items on sale."""
        items = self.world.items
        best_logit = np.full(len(user_index), -np.inf)
        user_side = np.column_stack([self._user_side[user_index], np.ones(len(user_index))])
        for category in range(len(CATEGORIES)):
            in_category = np.flatnonzero(self.available & (items.category == category))
            if len(in_category) == 0:
                continue
            item_side = np.column_stack([self._item_side[in_category], self.item_purchase_term[in_category]]).T
            taste = self.category_logit_table[user_index, category]
            rows = max(1, _CHUNK * 8 // len(in_category))
            for start in range(0, len(user_index), rows):
                block = slice(start, start + rows)
                candidate = (user_side[block] @ item_side).max(axis=1) + taste[block]
                np.maximum(best_logit[block], candidate, out=best_logit[block])
        return _sigmoid(PURCHASE_INTERCEPT + best_logit)

    def device(self, user_index: np.ndarray) -> np.ndarray:
        users = self.world.users
        switched = users.mobile_switch[user_index] < self.config.mobile_adoption * self.state.population_progress
        return np.where(switched, MOBILE, users.device[user_index])

    def activity(self, user_index: np.ndarray) -> np.ndarray:
        users = self.world.users
        tilt = np.exp(self.config.population_shift * self.state.population_progress * AGE_ACTIVITY_TILT)
        return users.activity[user_index] * tilt[users.age_band[user_index]]


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logit))
