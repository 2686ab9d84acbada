"""At 10M rows a negligible change is 'significant' for raw tests; the policy must stay quiet."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftloop.drift import build_baseline, compare_to_baseline
from driftloop.storage import local_source

ROWS = 10_000_000
CHUNK = 1_000_000


def _write(path, seed: int, mean: float, mobile_share: float) -> str:
    rng = np.random.default_rng(seed)
    schema = pa.schema([("session_minutes", pa.float64()), ("price", pa.float64()), ("device", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for _ in range(ROWS // CHUNK):
            device = np.where(rng.random(CHUNK) < mobile_share, "mobile", "desktop")
            writer.write_table(
                pa.table(
                    {
                        "session_minutes": rng.normal(mean, 1.0, CHUNK),
                        "price": rng.lognormal(3.0 + mean / 10, 0.5, CHUNK),
                        "device": pa.array(device).dictionary_encode(),
                    },
                    schema=schema,
                )
            )
    return str(path)


@pytest.mark.slow
def test_negligible_change_at_10m_rows_does_not_alarm(tmp_path):
    reference = _write(tmp_path / "reference.parquet", seed=1, mean=0.0, mobile_share=0.600)
    current = _write(tmp_path / "current.parquet", seed=2, mean=0.01, mobile_share=0.603)
    report = compare_to_baseline(build_baseline(local_source(reference)), local_source(current))
    raw_pvalues = [
        report.features["session_minutes"].statistics["ks_pvalue"],
        report.features["price"].statistics["ks_pvalue"],
        report.features["device"].statistics["chi2_pvalue"],
    ]
    assert max(raw_pvalues) < 0.001, "the raw tests must reject at this size, or the case proves nothing"
    assert report.decision == "none", report.reasons
    assert report.drifted_features == []
    assert report.features["session_minutes"].statistics["ks_statistic_error_bound"] < 0.002
