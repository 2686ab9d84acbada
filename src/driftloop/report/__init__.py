"""The driftloop report: one self-contained HTML page (and PNG charts) auditing every run."""

from driftloop.report.build import build_report
from driftloop.report.reading import ObjectStore, S3Store, WorkspaceStore

__all__ = ["ObjectStore", "S3Store", "WorkspaceStore", "build_report"]
