"""The two built images: non-root users, the serving image without torch, and nothing of
this machine (a wheel folder, the checkout's path, a key) in their build history."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.containers.conftest import COMPONENT_UID, SERVING_UID

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("which, uid", [("component", COMPONENT_UID), ("serving", SERVING_UID)])
def test_images_run_as_their_non_root_user(request, docker_client, which, uid):
    image = request.getfixturevalue(f"{which}_image")
    out = docker_client.containers.run(
        image, entrypoint=["id", "-u"], remove=True, network_mode="none"
    )
    assert int(out.decode().strip()) == uid != 0


def test_serving_image_has_no_torch_and_the_component_image_has(
    docker_client, serving_image, component_image
):
    probe = "import importlib.util as u; print(u.find_spec('torch') is not None)"
    run = lambda image: docker_client.containers.run(  # noqa: E731
        image, entrypoint=["python3", "-c", probe], remove=True, network_mode="none"
    )
    assert run(serving_image).decode().strip() == "False"
    assert run(component_image).decode().strip() == "True"


@pytest.mark.parametrize("which", ["component", "serving"])
def test_no_host_path_or_secret_in_the_build_history(request, which):
    image = request.getfixturevalue(f"{which}_image")
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for leak in (str(ROOT), "/opt/wheels", "PRIVATE KEY", "ca-certificates.crt", "/root/"):
        assert leak not in history, f"{image}: {leak!r} in its build history"


@pytest.mark.parametrize("which", ["component", "serving"])
def test_images_hold_this_checkouts_code(request, docker_client, which):
    """build-images.sh labels each image with the digest of the code it copied in; an image
    older than the checkout runs other code (`sigdeploy run --runner docker` warns)."""
    from components import images

    image = request.getfixturevalue(f"{which}_image")
    built = (docker_client.images.get(image).labels or {}).get(images.SOURCE_DIGEST_LABEL)
    assert built == images.source_digest(), f"{image} is older than this checkout: make images"
