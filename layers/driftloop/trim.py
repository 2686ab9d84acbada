"""Remove what the Lambda layer never imports, so function + layers stay under Lambda's 250 MB.

Run on the layer's ``python/`` folder after the wheels are installed (stdlib only: it runs on
whichever Python drives the build). Prints the bytes each rule removed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

TEST_DIRECTORIES = frozenset({"tests", "__pycache__"})
SOURCE_SUFFIXES = (".pyi", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".c", ".cc", ".cpp")
# pyarrow parts behind optional imports: S3 is read through boto3 (driftloop.storage), and Flight,
# GCS, Azure, HDFS and ORC are not used. lib.so links the rest, so nothing else can go.
PYARROW_OPTIONAL = re.compile(
    r"^(_flight|_s3fs|_gcsfs|_azurefs|_hdfs|_orc|_dataset_orc|_pyarrow_cpp_tests)\.cpython-.*\.so$"
    r"|^lib(arrow_flight|arrow_s3|arrow_python_flight)\.so(\.\d+)*$"
    r"|^(flight|orc)\.py$"
)
# scipy is in the layer for the drift step's cheap challenger: Recommender.fit imports scipy.sparse only.
SCIPY_KEPT = re.compile(r"^(__init__|__config__|_distributor_init|version)\.py$|^_cyutility\..*\.so$|^(_lib|sparse)$")
SCIPY_SPARSE_UNUSED = ("linalg", "csgraph")
VERSIONED_LIBRARY = re.compile(r"^(lib[^/]+?\.so)((?:\.\d+)*)$")


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def tests_and_sources(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        is_test_directory = path.is_dir() and path.name in TEST_DIRECTORIES
        if is_test_directory or (path.is_file() and path.name.endswith(SOURCE_SUFFIXES)):
            yield path
    yield from sorted((root / "pyarrow").glob("include"))


def optional_pyarrow_parts(root: Path) -> Iterator[Path]:
    package = root / "pyarrow"
    if package.is_dir():
        yield from sorted(path for path in package.iterdir() if PYARROW_OPTIONAL.match(path.name))


def unused_scipy_parts(root: Path) -> Iterator[Path]:
    """Every scipy subpackage but ``_lib`` and ``sparse`` (without its ``linalg`` and ``csgraph``), and the
    OpenBLAS copy in ``scipy.libs`` that only ``scipy.linalg`` and the like load."""
    package = root / "scipy"
    if not package.is_dir():
        return
    yield from sorted(path for path in package.iterdir() if not SCIPY_KEPT.match(path.name))
    yield from (package / "sparse" / name for name in SCIPY_SPARSE_UNUSED)
    yield from sorted(root.glob("scipy.libs"))


def duplicate_shared_libraries(root: Path) -> Iterator[Path]:
    """Wheels cannot hold symlinks, so ``libX.so``, ``libX.so.N`` and ``libX.so.N.M`` are copies.

    The dynamic loader asks for the single-version name (the SONAME), so the other copies go.
    """
    groups: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for path in root.rglob("lib*.so*"):
        match = VERSIONED_LIBRARY.match(path.name)
        if match and path.is_file() and not path.is_symlink():
            groups[(path.parent, match.group(1))].append(path)
    for members in groups.values():
        sonames = [path for path in members if VERSIONED_LIBRARY.match(path.name).group(2).count(".") == 1]
        if len(sonames) != 1:
            continue
        kept = sonames[0]
        kept_bytes = kept.read_bytes()
        for path in sorted(members):
            if path != kept and path.stat().st_size == kept.stat().st_size and path.read_bytes() == kept_bytes:
                yield path


RULES = {
    "tests, caches, headers and sources": tests_and_sources,
    "optional pyarrow modules": optional_pyarrow_parts,
    "scipy beyond scipy.sparse": unused_scipy_parts,
    "duplicate shared libraries": duplicate_shared_libraries,
}


def trim(root: Path) -> dict[str, int]:
    """Apply every rule under ``root``; return the bytes each rule removed."""
    removed: dict[str, int] = {}
    for rule, find in RULES.items():
        total = 0
        for path in list(find(root)):
            if not path.exists():
                continue
            total += _tree_size(path)
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        removed[rule] = total
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the layer's python/ folder")
    args = parser.parse_args(argv)
    if not args.site.is_dir():
        print(f"{args.site}: not a folder", file=sys.stderr)
        return 2
    before = _tree_size(args.site)
    for rule, size in trim(args.site).items():
        print(f"trim: {rule:<36} {size / 1e6:8.1f} MB")
    print(f"trim: {before / 1e6:.1f} MB -> {_tree_size(args.site) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
