"""Images and their build: Dockerfiles linted with hadolint, pins checked against pyproject,
and the build script run against a stand-in `docker` that records its arguments.

The images themselves are built and run by tests/containers (a real Docker engine).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
HADOLINT = Path(sys.executable).with_name("hadolint")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_pass_hadolint(dockerfile):
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(dockerfile)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _arg_default(text: str, name: str) -> str:
    found = re.search(rf"^ARG {name}=(\S+)$", text, re.M)
    assert found, f"no ARG {name}=... default"
    return found.group(1)


def test_component_image_defaults_to_pypi_cuda_torch_and_runs_non_root():
    """By default (Cloud Build) the base is the public Python image and torch is the Makefile's
    pin from PyPI, whose Linux wheel is the CUDA build; the CPU wheel is a local build arg."""
    text = (ROOT / "docker" / "component.Dockerfile").read_text()
    assert _arg_default(text, "BASE_IMAGE") == "python:3.11-slim-bookworm"
    makefile = (ROOT / "Makefile").read_text()
    pin = re.search(r"^TORCH_PIN \?= (\S+)$", makefile, re.M).group(1)
    assert _arg_default(text, "TORCH") == pin and "+cpu" not in pin
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")


def test_serving_image_base_is_a_build_arg_and_runs_non_root():
    text = (ROOT / "docker" / "serving.Dockerfile").read_text()
    assert _arg_default(text, "BASE_IMAGE") == "python:3.11-slim-bookworm"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    reqs = (ROOT / "docker" / "serving-requirements.txt").read_text().splitlines()
    assert not [r for r in reqs if r.lower().startswith("torch")]
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")


def test_plain_build_context_holds_only_what_the_images_copy():
    """The plain `docker build` (no buildx) reads only the root .dockerignore: it must keep
    .venv, runs, registries and .git out of the context, and let in what the Dockerfiles COPY."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [x for x in lines if x and not x.startswith("#")]
    assert rules[0] == "*"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for dockerfile in DOCKERFILES:
        for src in re.findall(r"^COPY (\S+) ", dockerfile.read_text(), re.M):
            src = src.rstrip("/")
            assert any(src == a or src.startswith(a + "/") for a in allowed), (dockerfile, src)


def test_component_pins_cover_the_runtime_and_gcp_extra_within_pyproject_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {
        Requirement(r).name: Requirement(r)
        for r in project["dependencies"] + project["optional-dependencies"]["gcp"]
    }
    pins = {}
    for line in (ROOT / "docker" / "component-requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{line}: pin an exact version"
            pins[req.name] = spec.version
    assert set(pins) == set(wanted) - {"torch"}  # torch comes with the CUDA base image
    for name, version in pins.items():
        assert wanted[name].specifier.contains(version), f"{name}=={version} vs {wanted[name]}"


@pytest.fixture()
def fake_docker(tmp_path):
    """A `docker` on PATH that records each call's arguments, one line per call."""
    log = tmp_path / "docker.log"
    stub = tmp_path / "bin" / "docker"
    stub.parent.mkdir()
    stub.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n')
    stub.chmod(0o755)
    env = os.environ | {"PATH": f"{stub.parent}:{os.environ['PATH']}", "GIT_SHA": "abc1234"}
    env["PYTHON"] = sys.executable
    return env, log


def _builds(log: Path) -> list[str]:
    """The recorded build calls (the script asks `docker buildx version` first)."""
    return [x for x in log.read_text().splitlines() if x != "buildx version"]


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_build_script_pushes_version_sha_tags(fake_docker):
    env, log = fake_docker
    env["REGISTRY"] = "us-central1-docker.pkg.dev/p/sigdeploy"
    out = subprocess.run(
        ["bash", "scripts/build-images.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    tag = f"{_version()}-abc1234"
    assert out.stdout.splitlines() == [
        f"component=us-central1-docker.pkg.dev/p/sigdeploy/python-component:{tag}",
        f"serving=us-central1-docker.pkg.dev/p/sigdeploy/python-serving:{tag}",
    ]
    component, serving = _builds(log)
    assert component.startswith("buildx build --push --platform linux/amd64")
    assert "--file docker/component.Dockerfile" in component
    assert f"--tag us-central1-docker.pkg.dev/p/sigdeploy/python-component:{tag}" in component
    assert "--file docker/serving.Dockerfile" in serving


def test_build_script_loads_locally_for_kind_and_needs_a_registry_to_push(fake_docker):
    env, log = fake_docker
    out = subprocess.run(
        ["bash", "scripts/build-images.sh", "--load"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.splitlines()[0] == f"component=sigdeploy/python-component:{_version()}-abc1234"
    )
    assert all(line.startswith("buildx build --load --file") for line in _builds(log))
    env.pop("REGISTRY", None)
    refused = subprocess.run(
        ["bash", "scripts/build-images.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2 and "set REGISTRY" in refused.stderr


def test_build_script_without_buildx_builds_plainly_and_pushes(fake_docker):
    """Debian's docker.io has no buildx: a plain `docker build`, then `docker push`."""
    env, log = fake_docker
    env |= {"REGISTRY": "r.example/p", "BUILDER": "docker", "BASE_IMAGE": "local/base:1"}
    env |= {"TORCH": "torch==2.13.0+cpu", "TORCH_FIND_LINKS": "http://127.0.0.1:9/"}
    out = subprocess.run(
        ["bash", "scripts/build-images.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    calls = log.read_text().splitlines()
    builds = [c for c in calls if c.startswith("build ")]
    pushes = [c for c in calls if c.startswith("push ")]
    assert len(builds) == 2 and len(pushes) == 4
    component, serving = builds
    assert "--file docker/component.Dockerfile" in component
    assert "--build-arg BASE_IMAGE=local/base:1" in component
    assert "--build-arg TORCH=torch==2.13.0+cpu" in component
    assert "--build-arg BASE_IMAGE=local/base:1" in serving and "TORCH" not in serving
    tag = f"{_version()}-abc1234"
    assert f"push r.example/p/python-serving:{tag}" in pushes


def test_build_script_refuses_an_unknown_option(fake_docker):
    env, _ = fake_docker
    out = subprocess.run(
        ["bash", "scripts/build-images.sh", "--bogus"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "unknown option --bogus" in out.stderr


def test_cloud_build_runs_the_same_script():
    config = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    (step,) = config["steps"]
    assert step["args"] == ["scripts/build-images.sh"]
    env = dict(e.split("=", 1) for e in step["env"])
    assert env["REGISTRY"] == "${_REGION}-docker.pkg.dev/$PROJECT_ID/${_REPOSITORY}"


@pytest.mark.parametrize("script", sorted((ROOT / "scripts").glob("*.sh")), ids=lambda p: p.name)
def test_scripts_parse(script):
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert os.access(script, os.X_OK)


def test_image_tags_follow_the_project_version():
    """pyproject.toml is the version's one home; the compiled image names follow it (an
    installed copy older than pyproject.toml fails here: reinstall, as `make` does)."""
    from components import images

    assert images.VERSION == _version()
    assert images.COMPONENT_IMAGE.endswith(f":{_version()}")
    assert images.SERVING_IMAGE.endswith(f":{_version()}")
