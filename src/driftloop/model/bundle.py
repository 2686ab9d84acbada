"""The training/inference source bundle (``sourcedir.tar.gz``) for the SageMaker scikit-learn container.

Layout: ``train.py`` and ``inference.py`` shims and ``requirements.txt`` at the top (from
``driftloop/model/container/``), plus the ``driftloop`` modules the entry points import, which use
only numpy/pyarrow (scipy at training time): no boto3, no Powertools. The archive is
byte-for-byte reproducible: sorted members, fixed mtimes, owners and modes, gzip without a timestamp.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_CONTAINER = Path(__file__).resolve().parent / "container"
TOP_LEVEL_FILES = ("train.py", "inference.py", "requirements.txt")
PACKAGE_MODULES = (
    "__init__.py",
    "errors.py",
    "layout.py",
    "storage.py",
    "model/__init__.py",
    "model/data.py",
    "model/recommender.py",
    "model/metrics.py",
    "model/train.py",
    "model/inference.py",
)
_FIXED_MTIME = 315532800  # 1980-01-01, the earliest time zip-based tools accept


def bundle_members() -> list[tuple[str, bytes]]:
    """(archive path, content) for every file in the bundle, sorted by path."""
    members = [(name, (_CONTAINER / name).read_bytes()) for name in TOP_LEVEL_FILES]
    members += [(f"driftloop/{module}", (_PACKAGE_ROOT / module).read_bytes()) for module in PACKAGE_MODULES]
    return sorted(members)


def build_source_bundle() -> tuple[bytes, str]:
    """The gzipped tar and its SHA-256 hex digest (same code, same bytes, same digest)."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in bundle_members():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = _FIXED_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(content))
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=9) as stream:
        stream.write(tar_bytes.getvalue())
    bundle = compressed.getvalue()
    return bundle, hashlib.sha256(bundle).hexdigest()
