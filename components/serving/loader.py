"""Which model is served, and hot swapping it.

:class:`ModelHolder` owns one reference to the current :class:`ServingModel`. A background
thread loads the first model (so that the server answers health checks, with 503, while it
loads) and then:

- registry mode: reads the champion pointer every ``poll_seconds``; when its contents
  change (a deploy replaces it atomically with os.replace) the new bundle is loaded in the
  thread, checked, and swapped in with one assignment. Requests take the reference once, so
  each is answered wholly by one model, and none waits for a load;
- storage mode (``AIP_STORAGE_URI``, as on Vertex AI): the bundle is copied down once
  (gs://, by platforms/gcp.py through google-cloud-storage, which honours
  STORAGE_EMULATOR_HOST) or read in place (a local path) and served until the process ends.

Before any of that, :func:`check_model_source` ends the start with one line when there is
nothing to serve (no registry, no such model, no champion, no bundle at a local
``storage_uri``), unless ``wait_for_champion`` asks to wait for the first deploy.

A model that fails to load (a bundle refused by its checks: files that do not match the
manifest, parts that disagree, weights that are not finite) is logged with its reason and
the previous one keeps serving; /health names the refused version and why (``refused``),
and answers 503 with the reason while no valid model is loaded. The load is retried with
back-off.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.core.errors import ConfigError, RegistryError, SigdeployError, did_you_mean
from components.serving.config import ServeConfig
from components.serving.model import ServingModel, load_serving_model

if TYPE_CHECKING:
    from components.core.registry import LocalRegistry

log = logging.getLogger(__name__)

MAX_RETRY_SECONDS = 60.0
WAIT_HINT = "pass --wait-for-champion to wait for"


class ModelHolder:
    """The current model (``current``, None until the first load) and its poller thread."""

    def __init__(
        self, config: ServeConfig, loader: Callable[..., ServingModel] = load_serving_model
    ) -> None:
        self.config = config
        self._loader = loader
        self.current: ServingModel | None = None
        self.last_error: str | None = None
        # the version (or storage URI) whose bundle failed to load, and why; None once the
        # champion is served
        self.refused: dict[str, Any] | None = None
        self._candidate: dict[str, Any] | None = None  # what the load in progress reads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._download_dir: Path | None = None
        self._pointer_seen: bytes | None = None
        self._retry_at = 0.0
        self._retry_delay = config.poll_seconds
        self._drift_checked = time.monotonic()
        self._registry: LocalRegistry | None = None
        # before anything starts: a start with nothing to serve is one error line, not a
        # server answering 503 forever
        check_model_source(config)
        if not config.storage_uri:
            from components.core.registry import LocalRegistry

            self._registry = LocalRegistry(config.registry, config.model_name)

    # --- lifecycle ---

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="sigdeploy-model-poller", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._download_dir is not None:
            shutil.rmtree(self._download_dir, ignore_errors=True)
            self._download_dir = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the poller must outlive any one failure
                log.exception("model poller failed; retrying")
            self._stop.wait(self.config.poll_seconds)

    # --- one poll ---

    def poll(self) -> None:
        """Load or swap the model if needed; also run the periodic drift check."""
        if self.config.storage_uri:
            if self.current is None and time.monotonic() >= self._retry_at:
                self._attempt(self._load_from_storage)
        else:
            self._poll_registry()
        self._maybe_check_drift()

    def _poll_registry(self) -> None:
        registry = self._registry
        assert registry is not None
        try:
            pointer = registry.pointer.read_bytes()
        except FileNotFoundError:
            if self._pointer_seen != b"":
                log.warning(
                    "registry '%s' has no champion for %s yet; waiting for a deploy",
                    registry.root,
                    self.config.model_name,
                )
                self._pointer_seen = b""
            return
        changed = pointer != self._pointer_seen
        if not changed and (self.last_error is None or time.monotonic() < self._retry_at):
            return
        if changed:
            self._retry_delay = self.config.poll_seconds
        self._pointer_seen = pointer

        def load() -> ServingModel | None:
            champion = registry.champion()
            if champion is None:
                return None
            if self.current is not None and self.current.version == champion.version:
                return self.current
            self._candidate = {"version": champion.version}
            return self._load(champion.path, champion.version)

        self._attempt(load)

    def _attempt(self, load: Callable[[], ServingModel | None]) -> bool:
        self._candidate = None
        try:
            model = load()
        except SigdeployError as exc:
            self._failed(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - a bad bundle must not stop serving
            log.debug("model load failed", exc_info=True)
            self._failed(f"{type(exc).__name__}: {exc}")
            return False
        self.last_error = self.refused = None
        self._retry_delay = self.config.poll_seconds
        if model is not None and model is not self.current:
            previous = self.current
            self.current = model  # the swap: one reference assignment
            if previous is not None:
                log.info(
                    "now serving %s version %s (was version %s)",
                    model.name,
                    model.version,
                    previous.version,
                )
            else:
                log.info("now serving %s version %s", model.name, model.version)
        return True

    def _failed(self, reason: str) -> None:
        keeping = f"; still serving version {self.current.version}" if self.current else ""
        candidate = self._candidate
        what = "the model"
        if candidate is not None:
            what = f"version {candidate['version']}" if "version" in candidate else "the bundle"
            self.refused = {**candidate, "reason": reason}
        log.error(
            "cannot load %s: %s%s (retrying in %.0f s)", what, reason, keeping, self._retry_delay
        )
        self.last_error = reason
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, MAX_RETRY_SECONDS)

    def _load(self, path: Path, version: str | None) -> ServingModel:
        c = self.config
        return self._loader(
            path,
            version,
            backend=c.backend,
            threads=c.threads,
            drift={
                "window": c.drift_window,
                "min_rows": c.drift_min_rows,
                "psi_threshold": c.psi_threshold,
                "shift_threshold": c.shift_threshold,
            },
        )

    def _load_from_storage(self) -> ServingModel:
        uri = self.config.storage_uri
        if uri.startswith("gs://"):
            from components.core.platforms import gcp

            if self._download_dir is None:
                self._download_dir = Path(tempfile.mkdtemp(prefix="sigdeploy-model-"))
            try:
                path = gcp.download_dir(uri, self._download_dir / "bundle")
            except SigdeployError as exc:
                raise RegistryError(
                    f"storage URI (--storage-uri or AIP_STORAGE_URI): {exc}"
                ) from exc
        else:
            path = local_bundle(uri)
        self._candidate = {"storage_uri": uri}
        return self._load(path, None)

    def _maybe_check_drift(self) -> None:
        model = self.current
        now = time.monotonic()
        if model is None or now - self._drift_checked < self.config.drift_check_seconds:
            return
        self._drift_checked = now
        model.monitor.check_if_new_rows()

    def status(self) -> dict[str, Any]:
        """What /health shows: "ok" and the model served; "loading" before any load
        finished; "unavailable" when no model is served and the last load failed."""
        model = self.current
        out: dict[str, Any] = {
            "status": "ok" if model else "unavailable" if self.last_error else "loading"
        }
        if model is not None:
            out.update(model.describe())
        if self.refused:
            out["refused"] = dict(self.refused)
        if self.last_error:
            out["last_error"] = self.last_error
        return out


def check_model_source(config: ServeConfig) -> None:
    """Raise a one-line error when the server would have nothing to serve.

    Registry mode: the registry directory, the model in it and its champion (a complete
    bundle) must exist. Storage mode: a local path must be a complete bundle; gs:// is not
    checked here (the download reports its own errors, retried). With
    ``wait_for_champion`` only what waiting cannot fix is checked. Reads only: nothing is
    created on disk.
    """
    from components.core.bundle_format import missing_files
    from components.core.registry import LocalRegistry, model_names

    if config.storage_uri:
        if not config.storage_uri.startswith("gs://") and not config.wait_for_champion:
            local_bundle(config.storage_uri, hint=True)
        return
    uri, name = config.registry, config.model_name
    if "://" in uri:
        raise ConfigError(
            f"--registry '{uri}': sigdeploy serve follows a local registry directory; serve "
            "a Vertex AI model version with --storage-uri gs://... (its artifact directory)"
        )
    registry = LocalRegistry(uri, name)  # checks the model name, creates nothing
    if config.wait_for_champion:
        return
    if not registry.root.is_dir():
        raise RegistryError(
            f"registry '{uri}': no such directory; check --registry (the directory that "
            f"`sigdeploy run` deploys to), or {WAIT_HINT} the first deploy"
        )
    if not registry.model_dir.is_dir():
        held = model_names(registry.root)
        if not held:
            raise RegistryError(
                f"registry '{uri}': no model '{name}' there (it holds none yet); run the "
                f"pipeline first, or {WAIT_HINT} the first deploy"
            )
        shown = ", ".join(held[:10]) + (f" and {len(held) - 10} more" if len(held) > 10 else "")
        raise RegistryError(
            f"registry '{uri}': no model '{name}' there{did_you_mean(name, held)}; models "
            f"there: {shown}; check --model-name, or {WAIT_HINT} its first deploy"
        )
    champion = registry.champion()  # a damaged pointer raises its own one-line error
    if champion is None:
        raise RegistryError(
            f"registry '{uri}': model '{name}' has no champion yet; run the pipeline first, "
            f"or {WAIT_HINT} the first deploy"
        )
    if missing := missing_files(champion.path):
        raise RegistryError(
            f"registry '{uri}': champion version {champion.version} of '{name}' lacks "
            f"{', '.join(missing)}; roll back with `sigdeploy registry rollback` or deploy "
            "a new version"
        )


def local_bundle(uri: str, hint: bool = False) -> Path:
    """The complete bundle directory that a local (or file://) storage URI names.

    ``hint``: add how to wait instead (at start-up; a waiting server already does)."""
    from components.core.bundle_format import missing_files

    path = Path(uri.removeprefix("file://")).expanduser()
    wait = f", or {WAIT_HINT} it" if hint else ""
    if not path.is_dir():
        raise RegistryError(
            f"storage URI '{uri}' (--storage-uri or AIP_STORAGE_URI): no such directory; "
            f"point it at a model bundle directory (gs://... or a local path){wait}"
        )
    if missing := missing_files(path):
        raise RegistryError(
            f"storage URI '{uri}' (--storage-uri or AIP_STORAGE_URI): not a complete model "
            f"bundle, it lacks {', '.join(missing)}; point it at a bundle directory such as "
            f"REGISTRY/MODEL/versions/N{wait}"
        )
    return path
