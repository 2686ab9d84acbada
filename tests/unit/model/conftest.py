from __future__ import annotations

import pyarrow as pa
import pytest
from model_fixtures import clustered_interactions


@pytest.fixture(scope="session")
def interactions() -> pa.Table:
    return clustered_interactions()
