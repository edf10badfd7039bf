"""`sigdeploy serve` fails fast, as a real process, when there is nothing to serve: a missing
registry, a model name it does not hold, no champion yet, a local bundle that is not there.
Each is one line on stderr and exit 2, and nothing is created on disk. --wait-for-champion
(or SIGDEPLOY_WAIT_FOR_CHAMPION, which the serving image sets) starts anyway, answers 503,
and serves the first deploy."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from components.core.errors import ConfigError, RegistryError
from components.core.registry import LocalRegistry
from components.serving.cli import add_arguments
from components.serving.config import ServeConfig
from components.serving.loader import check_model_source

REPO = Path(__file__).resolve().parents[2]
SIGDEPLOY = str(Path(sys.executable).with_name("sigdeploy"))
MODEL = "digits-mlp"


def _env(**extra: str) -> dict[str, str]:
    """The test's environment without any serving variable that would change the outcome."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIP_", "SIGDEPLOY_"))}
    return env | {"PYTHONPATH": str(REPO)} | extra


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    """An empty working directory: the default ./registry is not there."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


@pytest.fixture()
def serve_fails(workdir: Path, helpers) -> Callable[..., str]:
    """Run `sigdeploy serve ARGS` in ``workdir``; it must exit 2 with one line on stderr,
    which is returned. (A server that starts instead fails the test by its timeout.)"""

    def run(*args: str, env: dict[str, str] | None = None) -> str:
        out = subprocess.run(
            [SIGDEPLOY, "serve", "--port", str(helpers.free_port()), *args],
            cwd=workdir,
            env=env or _env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        err = out.stderr.strip()
        assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
        assert err.startswith("sigdeploy: error: ") and "\n" not in err, out.stderr[-2000:]
        assert out.stdout == ""
        return err

    return run


def test_missing_registry_dir_is_one_line_and_creates_nothing(tmp_path, workdir, serve_fails):
    absent = tmp_path / "no-such-registry"
    err = serve_fails("--registry", str(absent), "--model-name", MODEL)
    assert f"registry '{absent}': no such directory" in err
    assert "--wait-for-champion" in err
    assert not absent.exists() and list(workdir.iterdir()) == []
    # the default registry (./registry) is named the same way when none is given
    err = serve_fails()
    assert "registry 'registry': no such directory" in err
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    "name, hint",
    [("digits-mpl", " (did you mean digits-mlp?)"), ("churn", "")],
)
def test_wrong_model_name_lists_the_models_there(serve_fails, registry, name, hint):
    LocalRegistry(registry.root, "iris").record({"deploy": False})  # a second model name
    before = sorted(p.name for p in registry.root.iterdir())
    err = serve_fails("--registry", str(registry.root), "--model-name", name)
    assert f"registry '{registry.root}': no model '{name}' there{hint};" in err
    assert "models there: digits-mlp, iris; check --model-name" in err
    assert ("did you mean" in err) == bool(hint)
    assert sorted(p.name for p in registry.root.iterdir()) == before  # nothing created


def test_model_without_champion_points_at_wait_for_champion(tmp_path, serve_fails):
    root = tmp_path / "registry"
    LocalRegistry(root, MODEL).record({"deploy": False})  # evaluated once, never deployed
    err = serve_fails("--registry", str(root), "--model-name", MODEL)
    assert f"registry '{root}': model '{MODEL}' has no champion yet" in err
    assert "run the pipeline first, or pass --wait-for-champion" in err
    root_empty = tmp_path / "empty"
    root_empty.mkdir()
    err = serve_fails("--registry", str(root_empty))
    assert f"no model '{MODEL}' there (it holds none yet)" in err and "--wait-for-champion" in err
    assert list(root_empty.iterdir()) == []


def test_storage_uri_that_is_not_a_bundle_fails_fast(tmp_path, serve_fails, digits_bundles):
    absent = tmp_path / "absent"
    err = serve_fails("--storage-uri", str(absent))
    assert f"storage URI '{absent}' (--storage-uri or AIP_STORAGE_URI): no such directory" in err
    assert not absent.exists()
    partial = tmp_path / "partial"
    shutil.copytree(digits_bundles[0], partial)
    (partial / "model.safetensors").unlink()
    err = serve_fails(env=_env(AIP_STORAGE_URI=str(partial)))
    assert f"storage URI '{partial}'" in err and "it lacks model.safetensors" in err


def test_no_wait_flag_overrides_the_environment(serve_fails):
    """The serving image sets SIGDEPLOY_WAIT_FOR_CHAMPION=true; the flag can still refuse."""
    env = _env(SIGDEPLOY_WAIT_FOR_CHAMPION="true")
    err = serve_fails("--no-wait-for-champion", env=env)
    assert "registry 'registry': no such directory" in err


@contextlib.contextmanager
def server_process(cmd: list[str], cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(15)


def health_of(proc: subprocess.Popen, url: str) -> httpx.Response | None:
    """The health answer, or None while the server is not listening yet (it must be alive)."""
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        assert proc.poll() is None, f"the server exited {proc.returncode}: " + (
            proc.stderr.read()[-2000:] if proc.stderr else ""
        )
        return None


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_waiting_server_answers_503_then_serves_the_first_deploy(
    tmp_path, workdir, digits_bundles, helpers, how
):
    root = tmp_path / "registry"  # not there yet: the first deploy creates it
    port = helpers.free_port()
    cmd = [SIGDEPLOY, "serve", "--registry", str(root), "--port", str(port)]
    cmd += ["--poll-seconds", "0.1"]
    if how == "flag":
        env = _env()
        cmd.append("--wait-for-champion")
    else:
        env = _env(SIGDEPLOY_WAIT_FOR_CHAMPION="true")
    url = f"http://127.0.0.1:{port}/health"
    with server_process(cmd, workdir, env) as proc:
        waiting = helpers.wait_for(lambda: health_of(proc, url), 60, "the server to listen")
        assert waiting.status_code == 503 and waiting.json()["status"] == "loading"
        assert not root.exists()  # waiting creates nothing
        LocalRegistry(root, MODEL).register(digits_bundles[0], {"deploy": True})
        helpers.wait_for(lambda: health_of(proc, url).status_code == 200, 60, "the deploy")
        assert health_of(proc, url).json()["model_version"] == "1"
    assert list(workdir.iterdir()) == []


def test_serving_image_command_waits_for_the_first_deploy(workdir, helpers):
    """The image's ENV and ENTRYPOINT, run here: a container started before any deploy
    answers 503 instead of exiting (which would crash-loop it)."""
    text = (REPO / "docker" / "serving.Dockerfile").read_text().replace("\\\n", " ")
    image_env = dict(
        pair.split("=", 1)
        for line in text.splitlines()
        if line.startswith("ENV ")
        for pair in line.split()[1:]
    )
    assert image_env["SIGDEPLOY_WAIT_FOR_CHAMPION"] == "true"
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))
    assert entrypoint[:3] == ["python", "-m", "components.serving"]
    port = helpers.free_port()
    cmd = [sys.executable, *entrypoint[1:], "--host", "127.0.0.1"]  # the last --host wins
    env = _env(**image_env) | {"PYTHONPATH": str(REPO), "AIP_HTTP_PORT": str(port)}
    url = f"http://127.0.0.1:{port}/health"
    with server_process(cmd, workdir, env) as proc:
        answer = helpers.wait_for(lambda: health_of(proc, url), 60, "the server to listen")
        assert answer.status_code == 503 and answer.json()["status"] == "loading"


def test_damaged_champion_fails_at_start(registry, config_for):
    (registry.champion().path / "model.safetensors").unlink(missing_ok=True)
    with pytest.raises(RegistryError, match="champion version 1 of 'digits-mlp' lacks"):
        check_model_source(config_for(registry))
    with pytest.raises(ConfigError, match="follows a local registry directory"):
        check_model_source(ServeConfig(registry="vertex://p/r", wait_for_champion=True))
    check_model_source(config_for(registry, wait_for_champion=True))  # waiting: no check


def test_help_states_every_default():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = ServeConfig()
    options = [a for a in parser._actions if a.dest != "help"]
    assert {a.dest for a in options} >= {"wait_for_champion", "log_level", "registry"}
    for action in options:
        assert "(default: " in (action.help or ""), action.option_strings
        value = getattr(defaults, action.dest, None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            # the config's own default, as a whole number ("or 1" is not "or 10")
            assert re.search(rf"or {re.escape(shown)}(?![\d.])", action.help), action.dest
    out = subprocess.run(
        [SIGDEPLOY, "serve", "--help"], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert out.returncode == 0
    flat = " ".join(out.stdout.split())
    assert "--wait-for-champion, --no-wait-for-champion" in flat
    assert "(default: $SIGDEPLOY_WAIT_FOR_CHAMPION or off; on in the serving image)" in flat
    assert "server log level (default: info)" in flat
