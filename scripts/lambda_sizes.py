"""Unzipped size of each built Lambda function plus its layers, against Lambda's 250 MB limit.

Reads the template `sam build` wrote (default .aws-sam/build/template.yaml) and the artifact folders
beside it. Exits 1 when a function with its layers is over the limit, 2 when the build is missing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from driftloop.local.template import load_yaml

LAMBDA_UNZIPPED_LIMIT = 262_144_000


@dataclass(frozen=True)
class FunctionSize:
    function: str
    code_bytes: int
    layer_bytes: int
    unmeasured_layers: tuple[str, ...]

    @property
    def total_bytes(self) -> int:
        return self.code_bytes + self.layer_bytes

    @property
    def over_limit(self) -> bool:
        return self.total_bytes > LAMBDA_UNZIPPED_LIMIT

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_bytes": self.total_bytes, "over_limit": self.over_limit}


def folder_size(path: Path) -> int:
    """Bytes of every regular file below ``path`` (what Lambda unpacks; symlinks are not followed)."""
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())


def _global_layers(template: dict[str, Any]) -> list[Any]:
    return list(template.get("Globals", {}).get("Function", {}).get("Layers", []))


def measure(build_dir: Path) -> list[FunctionSize]:
    """Sizes of every AWS::Serverless::Function in the built template, in template order."""
    template = load_yaml(build_dir / "template.yaml")
    resources: dict[str, Any] = template.get("Resources", {})
    layer_folders = {
        name: build_dir / str(resource["Properties"]["ContentUri"])
        for name, resource in resources.items()
        if resource.get("Type") == "AWS::Serverless::LayerVersion"
    }
    layer_sizes = {name: folder_size(folder) for name, folder in layer_folders.items()}
    sizes = []
    for name, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties", {})
        layer_bytes = 0
        unmeasured: list[str] = []
        # SAM appends a function's own Layers to those of Globals.
        for layer in _global_layers(template) + list(properties.get("Layers", [])):
            reference = layer.get("Ref") if isinstance(layer, dict) else None
            if reference in layer_sizes:
                layer_bytes += layer_sizes[reference]
            else:
                unmeasured.append(str(layer))
        code_bytes = folder_size(build_dir / str(properties["CodeUri"]))
        sizes.append(FunctionSize(name, code_bytes, layer_bytes, tuple(unmeasured)))
    return sizes


def render(sizes: list[FunctionSize]) -> str:
    header = f"{'function':<24} {'code kB':>9} {'layers MB':>10} {'total MB':>9} {'of limit':>9}"
    lines = [header, "-" * len(header)]
    for size in sizes:
        share = size.total_bytes / LAMBDA_UNZIPPED_LIMIT
        flag = "  OVER" if size.over_limit else ""
        lines.append(
            f"{size.function:<24} {size.code_bytes / 1e3:9.1f} {size.layer_bytes / 1e6:10.2f}"
            f" {size.total_bytes / 1e6:9.2f} {share:9.1%}{flag}"
        )
        if size.unmeasured_layers:
            lines.append(f"  (not measured: {', '.join(size.unmeasured_layers)})")
    lines.append(f"limit: {LAMBDA_UNZIPPED_LIMIT:,} bytes unzipped, function plus all its layers")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", nargs="?", type=Path, default=Path(".aws-sam/build"))
    args = parser.parse_args(argv)
    if not (args.build_dir / "template.yaml").is_file():
        print(f"{args.build_dir}/template.yaml not found: run `sam build` first", file=sys.stderr)
        return 2
    sizes = measure(args.build_dir)
    print(render(sizes))
    return 1 if any(size.over_limit for size in sizes) else 0


if __name__ == "__main__":
    sys.exit(main())
