"""Installed size of the serving image's Python packages (docker/serving-requirements.txt).

Installs the requirements with pip into a temporary directory, as the serving Dockerfile
does (wheels only, byte-code compiled), and sums the files; compares with the installed
size of torch in this environment, which the serving image does without.

    python benchmarks/serve_size.py
"""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "docker" / "serving-requirements.txt"


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def installed_bytes(dist: str) -> int:
    files = md.distribution(dist).files or []
    return sum(os.path.getsize(f.locate()) for f in files if os.path.isfile(f.locate()))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="serve-size-") as tmp:
        target = Path(tmp) / "site"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--only-binary=:all:",
                "--no-warn-conflicts",
                "--target",
                str(target),
                "-r",
                str(REQUIREMENTS),
            ],
            check=True,
        )
        total = tree_bytes(target)
        sizes = {}
        for child in target.iterdir():
            name = child.name.split("-")[0].removesuffix(".libs")
            sizes[name] = sizes.get(name, 0) + (
                tree_bytes(child) if child.is_dir() else child.stat().st_size
            )
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:6]
    print("# largest: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in largest))
    try:
        torch = installed_bytes("torch")
    except md.PackageNotFoundError:
        print(f"serving_requirements_installed: ours={total / 1e6:.0f} MB")
        return 0
    print(
        f"serving_requirements_installed: ours={total / 1e6:.0f} MB "
        f"torch_cpu={torch / 1e6:.0f} MB ratio={total / torch:.3g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
