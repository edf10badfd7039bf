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
