"""Container images: the one place that names them.

The component image is the CUDA PyTorch image with this project installed (docker/); the
serving image is the slim CPU image. Compile targets override these per target, and
``compile.py --image`` / ``SIGDEPLOY_COMPONENT_IMAGE`` override them at compile time. The tag
is the project's version, whose one home is pyproject.toml: a version bump renames the
images that compiled pipelines use (scripts/build-images.sh tags the built images the same).
"""

from __future__ import annotations

import hashlib
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _project_version() -> str:
    """The installed distribution's version, else pyproject.toml's (a source checkout)."""
    try:
        return version("sigdeploy")
    except PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        found = re.search(r'^version = "([^"]+)"$', pyproject.read_text(), re.M)
        if found is None:
            raise RuntimeError(f"{pyproject}: no version line") from None
        return found.group(1)


VERSION = _project_version()
REPOSITORY = "sigdeploy"
# The local runner warns about images without 'python' in the name; ours runs Python.
COMPONENT_IMAGE = f"{REPOSITORY}/python-component:{VERSION}"
SERVING_IMAGE = f"{REPOSITORY}/python-serving:{VERSION}"
# The label scripts/build-images.sh puts on both images: source_digest() of the code built in.
SOURCE_DIGEST_LABEL = "io.sigdeploy.source-digest"


def source_digest() -> str:
    """A digest of the Python code of the components and pipelines packages, as installed here
    (a checkout, or site-packages): an image labelled with another one runs other code."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in ("components", "pipelines"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
