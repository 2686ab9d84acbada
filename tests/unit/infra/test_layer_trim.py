"""layers/driftloop/trim.py on a small fake site-packages."""

from __future__ import annotations

from pathlib import Path

from conftest import load_script

layer_trim = load_script("layer_trim", "layers/driftloop/trim.py")

KEPT = [
    "pyarrow/__init__.py",
    "pyarrow/lib.cpython-312-aarch64-linux-gnu.so",
    "pyarrow/_fs.cpython-312-aarch64-linux-gnu.so",
    "pyarrow/_parquet.cpython-312-aarch64-linux-gnu.so",
    "pyarrow/libarrow.so.2600",
    "pyarrow/libarrow_python.so.2600",
    "pyarrow/libparquet.so.2600",
    "pyarrow/fs.py",
    "pandas/core/frame.py",
    "numpy.libs/libscipy_openblas64_-ff651d7f.so",
    "pydantic_core/_pydantic_core.cpython-312-aarch64-linux-gnu.so",
    "scipy/__init__.py",
    "scipy/_cyutility.cpython-312-aarch64-linux-gnu.so",
    "scipy/_lib/_util.py",
    "scipy/sparse/_csr.py",
    "scipy/sparse/_sparsetools.cpython-312-aarch64-linux-gnu.so",
]
REMOVED = [
    "pyarrow/_flight.cpython-312-aarch64-linux-gnu.so",
    "pyarrow/_s3fs.cpython-312-aarch64-linux-gnu.so",
    "pyarrow/libarrow_flight.so.2600",
    "pyarrow/libarrow_s3.so.2600",
    "pyarrow/flight.py",
    "pyarrow/include/arrow/api.h",
    "pyarrow/lib.pyx",
    "pyarrow/libarrow_python.so",
    "pyarrow/libarrow_python.so.2600.1.0",
    "pandas/tests/test_frame.py",
    "pandas/__init__.pyi",
    "numpy/_core/include/numpy/ndarrayobject.h",
    "scipy/conftest.py",
    "scipy/linalg/_flapack.cpython-312-aarch64-linux-gnu.so",
    "scipy/stats/_stats_py.py",
    "scipy/sparse/linalg/_isolve/iterative.py",
    "scipy/sparse/csgraph/_traversal.cpython-312-aarch64-linux-gnu.so",
    "scipy.libs/libscipy_openblas-68440149.so",
]


def _site(tmp_path: Path) -> Path:
    for relative in KEPT + REMOVED:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        same_library = relative.startswith("pyarrow/libarrow_python.so")
        path.write_bytes(b"libarrow_python" if same_library else relative.encode())
    return tmp_path


def test_trim_removes_unused_parts_and_keeps_what_imports_need(tmp_path):
    site = _site(tmp_path)
    removed = layer_trim.trim(site)
    remaining = {str(path.relative_to(site)) for path in site.rglob("*") if path.is_file()}
    assert remaining == set(KEPT)
    assert all(size > 0 for size in removed.values())


def test_a_library_copy_that_differs_is_kept(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/libx.so.1").write_bytes(b"one")
    (tmp_path / "pkg/libx.so").write_bytes(b"different")
    layer_trim.trim(tmp_path)
    assert sorted(path.name for path in (tmp_path / "pkg").iterdir()) == ["libx.so", "libx.so.1"]
