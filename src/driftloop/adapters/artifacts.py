"""Model artifacts (``model.tar.gz``) from S3 into a local folder, extracted safely and cached."""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from driftloop.adapters.s3 import split_uri
from driftloop.errors import InvalidInputError

_CACHE = Path(os.environ.get("DRIFTLOOP_ARTIFACT_CACHE", tempfile.gettempdir())) / "driftloop-models"


def fetch_model_dir(s3: Any, model_data_url: str) -> Path:
    """Download and unpack once per URL; members escaping the folder are refused."""
    target = _CACHE / hashlib.sha256(model_data_url.encode()).hexdigest()[:24]
    if (target / ".complete").exists():
        return target
    bucket, key = split_uri(model_data_url)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as buffer:
        s3.download_fileobj(bucket, key, buffer)
        buffer.seek(0)
        try:
            with tarfile.open(fileobj=buffer, mode="r:gz") as archive:
                archive.extractall(target, filter="data")
        except (tarfile.TarError, OSError) as error:
            raise InvalidInputError(f"{model_data_url}: not a readable model archive ({error})") from error
    (target / ".complete").touch()
    return target
