"""Container images: the one place that names them.

The component image is the CUDA PyTorch image with this project installed (docker/); the
serving image is the slim CPU image. Compile targets override these per target, and
``compile.py --image`` / ``SIGDEPLOY_COMPONENT_IMAGE`` override them at compile time.
"""

from __future__ import annotations

VERSION = "0.1.0"
REPOSITORY = "sigdeploy"
# The local runner warns about images without 'python' in the name; ours runs Python.
COMPONENT_IMAGE = f"{REPOSITORY}/python-component:{VERSION}"
SERVING_IMAGE = f"{REPOSITORY}/python-serving:{VERSION}"


def artifact_registry_image(region: str, project: str, name: str, tag: str = VERSION) -> str:
    """An Artifact Registry image URI, e.g. us-central1-docker.pkg.dev/p/sigdeploy/NAME:TAG."""
    return f"{region}-docker.pkg.dev/{project}/{REPOSITORY}/{name}:{tag}"
