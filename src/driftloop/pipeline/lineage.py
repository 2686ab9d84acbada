"""What the champion's training data already holds: the uploads (by URI and version) its dataset's
manifest lists as consumed. Admit asks it of every trigger, without reading any Parquet."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import raise_for_client_error
from driftloop.adapters.s3 import get_json
from driftloop.layout import s3_uri
from driftloop.pipeline.services import Services


def champion_manifest(services: Services, champion: dict[str, Any] | None) -> dict[str, Any] | None:
    if not champion or not champion.get("dataset_manifest_key"):
        return None
    return get_json(services.s3, services.settings.data_bucket, champion["dataset_manifest_key"])


def consumed_sources(manifest: dict[str, Any] | None) -> set[tuple[str, str]]:
    """(URI, ETag) of every upload already merged into the champion's training data: a new version
    of an object under the same key is new data, the same version is not."""
    return {(entry["source"], entry.get("version") or "") for entry in (manifest or {}).get("consumed_sources", [])}


def upload_already_merged(services: Services, key: str, champion: dict[str, Any] | None) -> str | None:
    """Why an upload brings nothing new (the version its key holds now is already in the champion's
    training data), or None. A missing object is left to the drift step to report."""
    bucket = services.settings.data_bucket
    try:
        current = services.s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    except ClientError as error:
        if error.response["Error"].get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise_for_client_error(error, s3_uri(bucket, key))
    if (s3_uri(bucket, key), current) in consumed_sources(champion_manifest(services, champion)):
        return (f"{s3_uri(bucket, key)} (ETag {current}) is already merged into the champion's training data "
                f"({(champion or {}).get('dataset_dir')})")
    return None
