"""Vocabularies and Arrow schemas of the simulated data (interactions follow docs/data-contracts.md)."""

from __future__ import annotations

import pyarrow as pa

AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
REGIONS = ("north", "south", "east", "west", "central")
DEVICES = ("mobile", "desktop", "tablet")
EVENT_TYPES = ("view", "cart", "purchase")

WINTER_CATEGORIES = ("outerwear", "knitwear", "heating", "winter_sports")
SUMMER_CATEGORIES = ("swimwear", "garden", "camping", "sunglasses")
ALL_SEASON_CATEGORIES = ("electronics", "books", "kitchen", "beauty")
CATEGORIES = WINTER_CATEGORIES + SUMMER_CATEGORIES + ALL_SEASON_CATEGORIES

UTC_MICROS = pa.timestamp("us", tz="UTC")

INTERACTIONS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("event_type", pa.string()),
        ("event_time", UTC_MICROS),
        ("age_band", pa.string()),
        ("region", pa.string()),
        ("device", pa.string()),
        ("item_category", pa.string()),
        ("price", pa.float64()),
        ("discount", pa.float64()),
        ("session_minutes", pa.float64()),
        ("user_tenure_days", pa.float64()),
    ]
)

GROUND_TRUTH_SCHEMA = pa.schema(
    [
        ("month", pa.string()),
        ("user_id", pa.string()),
        ("age_band", pa.string()),
        ("region", pa.string()),
        ("device", pa.string()),
        ("first_visit", UTC_MICROS),
        ("top_categories", pa.list_(pa.string())),
        ("top_category_shares", pa.list_(pa.float64())),
        ("best_purchase_probability", pa.float64()),
    ]
)

CATALOG_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("item_category", pa.string()),
        ("price", pa.float64()),
        ("discount", pa.float64()),
        ("launch_month", pa.int32()),
    ]
)
