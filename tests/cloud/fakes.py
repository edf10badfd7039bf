"""Local HTTP servers that answer like Vertex AI, BigQuery, the KFP API and Kubernetes.

The real client libraries talk to them over HTTP on 127.0.0.1 (a free port each); every
request is recorded so a test can assert exactly what was sent. They implement only the
calls this project makes, with just enough state (models and versions, endpoints, runs) for
the clients to read back what they created.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Call:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Handler = Callable[[Call, re.Match], tuple[int, Any]]


class RecordingServer:
    """A threaded HTTP server with a route table; records every request it receives."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.routes: list[tuple[str, re.Pattern, Handler]] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern + r"$"), handler))

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")

    def start(self) -> RecordingServer:
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parsed = urllib.parse.urlsplit(self.path)
                call = Call(
                    self.command,
                    urllib.parse.unquote(parsed.path),
                    urllib.parse.parse_qs(parsed.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                status, payload = owner.dispatch(call)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def dispatch(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            self.calls.append(call)
            for method, pattern, handler in self.routes:
                if method == call.method and (m := pattern.match(call.path)):
                    try:
                        return handler(call, m)
                    except KeyError as exc:
                        return error(404, f"not found: {exc}")
            return error(404, f"no route for {call.method} {call.path}")

    def find(self, method: str, pattern: str) -> list[Call]:
        rx = re.compile(pattern)
        return [c for c in self.calls if c.method == method and rx.search(c.path)]


def error(code: int, message: str) -> tuple[int, Any]:
    status = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}.get(
        code, "UNKNOWN"
    )
    return code, {"error": {"code": code, "message": message, "status": status}}


# ------------------------------------------------------------------------------ Vertex AI

_LOC = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"


def _display_filter(call: Call) -> str | None:
    text = (call.query.get("filter") or [""])[0]
    m = re.search(r'display_name="([^"]*)"', text)
    return m.group(1) if m else None


@dataclass
class FakeVertex(RecordingServer):
    """Pipeline jobs, schedules, Model Registry (versions, aliases, evaluations), endpoints."""

    job_states: list[str] = field(default_factory=lambda: ["PIPELINE_STATE_SUCCEEDED"])
    jobs: dict[str, dict] = field(default_factory=dict)
    models: dict[str, list[dict]] = field(default_factory=dict)  # model id -> versions
    evaluations: list[dict] = field(default_factory=list)
    endpoints: dict[str, dict] = field(default_factory=dict)
    contexts: dict[str, dict] = field(default_factory=dict)
    batch_jobs: dict[str, dict] = field(default_factory=dict)
    batch_states: list[str] = field(default_factory=lambda: ["JOB_STATE_SUCCEEDED"])
    _gets: dict[str, int] = field(default_factory=dict)
    _ids: int = 0

    def __post_init__(self) -> None:
        RecordingServer.__init__(self)
        r = self.route
        r("POST", _LOC + r"/pipelineJobs", self._create_job)
        r("GET", _LOC + r"/pipelineJobs/(?P<id>[^/]+)", self._get_job)
        r("POST", _LOC + r"/schedules", self._create_schedule)
        r("GET", _LOC + r"/models", self._list_models)
        r("POST", _LOC + r"/models:upload", self._upload)
        r("GET", _LOC + r"/models/(?P<id>[^/@:]+)(?:@(?P<ref>[^/:]+))?", self._get_model)
        r("GET", _LOC + r"/models/(?P<id>[^/@:]+):listVersions", self._list_versions)
        r(
            "POST",
            _LOC + r"/models/(?P<id>[^/@:]+)@(?P<ref>[^/:]+):mergeVersionAliases",
            self._merge_aliases,
        )
        r(
            "POST",
            _LOC + r"/models/(?P<id>[^/@:]+)(?:@(?P<ref>[^/:]+))?/evaluations:import",
            self._import_evaluation,
        )
        r("POST", _LOC + r"/batchPredictionJobs", self._create_batch)
        r("GET", _LOC + r"/batchPredictionJobs/(?P<id>[^/]+)", self._get_batch)
        r("GET", _LOC + r"/endpoints", self._list_endpoints)
        r("POST", _LOC + r"/endpoints", self._create_endpoint)
        r("GET", _LOC + r"/endpoints/(?P<id>[^/:]+)", self._get_endpoint)
        r("POST", _LOC + r"/endpoints/(?P<id>[^/:]+):deployModel", self._deploy)
        r("POST", _LOC + r"/endpoints/(?P<id>[^/:]+):undeployModel", self._undeploy)
        store = _LOC + r"/metadataStores/default"
        r("GET", store, lambda c, m: (200, {"name": f"{self._parent(m)}/metadataStores/default"}))
        r("GET", store + r"/contexts/(?P<id>[^/:]+)", self._get_context)
        r("POST", store + r"/contexts", self._create_context)
        r("POST", store + r"/contexts/(?P<id>[^/:]+):addContextChildren", lambda c, m: (200, {}))
        r("GET", _LOC + r"/operations/(?P<id>[^/]+)", self._get_operation)
        r(
            "GET",
            r"/v1/projects/[^/]+/locations/[^/]+/.*/operations/(?P<id>[^/]+)",
            self._get_operation,
        )

    def _next(self) -> str:
        self._ids += 1
        return str(1000 + self._ids)

    def _next_state(self, name: str, states: list[str]) -> str:
        """Each GET of a job moves it one state along ``states``; the last one stays."""
        n = self._gets[name] = self._gets.get(name, 0) + 1
        return states[min(n, len(states)) - 1]

    def _parent(self, m: re.Match) -> str:
        return f"projects/{m['project']}/locations/{m['location']}"

    def _operation(self, m: re.Match, kind: str, response: dict, type_url: str) -> dict:
        return {
            "name": f"{self._parent(m)}/{kind}/operations/{self._next()}",
            "done": True,
            "response": {"@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{type_url}"}
            | response,
        }

    def _get_operation(self, call: Call, m: re.Match) -> tuple[int, Any]:
        return 200, {"name": call.path.removeprefix("/v1/"), "done": True}

    # metadata (experiments)
    def _get_context(self, call: Call, m: re.Match) -> tuple[int, Any]:
        return 200, self.contexts[m["id"]]

    def _create_context(self, call: Call, m: re.Match) -> tuple[int, Any]:
        context_id = call.query["contextId"][0]
        context = call.json() | {
            "name": f"{self._parent(m)}/metadataStores/default/contexts/{context_id}"
        }
        self.contexts[context_id] = context
        return 200, context

    # pipeline jobs and schedules
    def _create_job(self, call: Call, m: re.Match) -> tuple[int, Any]:
        job = call.json()
        job_id = (call.query.get("pipelineJobId") or [self._next()])[0]
        job["name"] = f"{self._parent(m)}/pipelineJobs/{job_id}"
        job["state"] = "PIPELINE_STATE_PENDING"
        job["createTime"] = "2026-01-01T00:00:00Z"
        self.jobs[job["name"]] = job
        return 200, job

    def _get_job(self, call: Call, m: re.Match) -> tuple[int, Any]:
        name = f"{self._parent(m)}/pipelineJobs/{m['id']}"
        job = copy.deepcopy(self.jobs[name])
        job["state"] = self._next_state(name, self.job_states)
        job["jobDetail"] = {
            "pipelineRunContext": {
                "name": f"{self._parent(m)}/metadataStores/default/contexts/{m['id']}",
                "schemaTitle": "system.PipelineRun",
            }
        }
        if job["state"] == "PIPELINE_STATE_FAILED":
            job["error"] = {"code": 9, "message": "The DAG failed because task train failed."}
        return 200, job

    # batch prediction jobs: created pending, then each GET takes the next of batch_states
    def _create_batch(self, call: Call, m: re.Match) -> tuple[int, Any]:
        job = call.json() | {
            "name": f"{self._parent(m)}/batchPredictionJobs/{self._next()}",
            "state": "JOB_STATE_PENDING",
            "createTime": "2026-01-01T00:00:00Z",
        }
        self.batch_jobs[job["name"]] = job
        return 200, job

    def _get_batch(self, call: Call, m: re.Match) -> tuple[int, Any]:
        name = f"{self._parent(m)}/batchPredictionJobs/{m['id']}"
        job = copy.deepcopy(self.batch_jobs[name])
        job["state"] = self._next_state(name, self.batch_states)
        if job["state"] == "JOB_STATE_FAILED":
            job["error"] = {"code": 3, "message": "instance 0 has an unexpected field: id"}
        return 200, job

    def _create_schedule(self, call: Call, m: re.Match) -> tuple[int, Any]:
        schedule = call.json()
        schedule["name"] = f"{self._parent(m)}/schedules/{self._next()}"
        schedule["state"] = "ACTIVE"
        return 200, schedule

    # model registry
    def _resolve(self, model_id: str, ref: str | None) -> dict:
        versions = self.models[model_id]
        if not ref:
            return next(v for v in versions if "default" in v["versionAliases"])
        for v in versions:
            if v["versionId"] == ref or ref in v["versionAliases"]:
                return v
        raise KeyError(f"{model_id}@{ref}")

    def _list_models(self, call: Call, m: re.Match) -> tuple[int, Any]:
        want = _display_filter(call)
        found = [
            copy.deepcopy(self._resolve(mid, None))
            for mid in self.models
            if want is None or self._resolve(mid, None)["displayName"] == want
        ]
        return 200, {"models": found}

    def _get_model(self, call: Call, m: re.Match) -> tuple[int, Any]:
        return 200, copy.deepcopy(self._resolve(m["id"], m["ref"]))

    def _list_versions(self, call: Call, m: re.Match) -> tuple[int, Any]:
        # the API promises no order; newest first here, so a caller that needs one must sort
        return 200, {"models": copy.deepcopy(self.models[m["id"]][::-1])}

    def _upload(self, call: Call, m: re.Match) -> tuple[int, Any]:
        body = call.json()
        model = body["model"]
        parent_model = body.get("parentModel")
        if parent_model:
            model_id = parent_model.rsplit("/", 1)[1]
            versions = self.models[model_id]
        else:
            model_id = body.get("modelId") or self._next()
            versions = self.models.setdefault(model_id, [])
        version_id = str(len(versions) + 1)
        aliases = list(model.get("versionAliases", []))
        if not versions or model.get("defaultVersion", body.get("isDefaultVersion", True)):
            for v in versions:
                v["versionAliases"] = [a for a in v["versionAliases"] if a != "default"]
            aliases.append("default")
        stored = model | {
            "name": f"{self._parent(m)}/models/{model_id}",
            "versionId": version_id,
            "versionAliases": aliases,
            "createTime": "2026-01-01T00:00:00Z",
            "versionCreateTime": f"2026-01-01T00:{len(versions):02d}:00Z",  # one a minute
            # what Vertex says of a custom-container model: it takes machine types
            "supportedDeploymentResourcesTypes": ["DEDICATED_RESOURCES"],
        }
        versions.append(stored)
        response = {"model": stored["name"], "modelVersionId": version_id}
        return 200, self._operation(m, f"models/{model_id}", response, "UploadModelResponse")

    def _merge_aliases(self, call: Call, m: re.Match) -> tuple[int, Any]:
        target = self._resolve(m["id"], m["ref"])
        for alias in call.json()["versionAliases"]:
            if alias.startswith("-"):
                target["versionAliases"] = [a for a in target["versionAliases"] if a != alias[1:]]
                continue
            for v in self.models[m["id"]]:  # an alias names one version: move it
                v["versionAliases"] = [a for a in v["versionAliases"] if a != alias]
            target["versionAliases"].append(alias)
        return 200, copy.deepcopy(target)

    def _import_evaluation(self, call: Call, m: re.Match) -> tuple[int, Any]:
        evaluation = call.json()["modelEvaluation"]
        version = self._resolve(m["id"], m["ref"])
        evaluation["name"] = (
            f"{self._parent(m)}/models/{m['id']}@{version['versionId']}/evaluations/{self._next()}"
        )
        self.evaluations.append(evaluation)
        return 200, evaluation

    # endpoints
    def _list_endpoints(self, call: Call, m: re.Match) -> tuple[int, Any]:
        want = _display_filter(call)
        found = [e for e in self.endpoints.values() if want is None or e["displayName"] == want]
        return 200, {"endpoints": copy.deepcopy(found)}

    def _create_endpoint(self, call: Call, m: re.Match) -> tuple[int, Any]:
        endpoint = call.json()
        endpoint_id = (call.query.get("endpointId") or [self._next()])[0]
        endpoint["name"] = f"{self._parent(m)}/endpoints/{endpoint_id}"
        endpoint.setdefault("deployedModels", [])
        endpoint.setdefault("trafficSplit", {})
        self.endpoints[endpoint_id] = endpoint
        return 200, self._operation(
            m, f"endpoints/{endpoint_id}", copy.deepcopy(endpoint), "Endpoint"
        )

    def _get_endpoint(self, call: Call, m: re.Match) -> tuple[int, Any]:
        return 200, copy.deepcopy(self.endpoints[m["id"]])

    def _deploy(self, call: Call, m: re.Match) -> tuple[int, Any]:
        body = call.json()
        endpoint = self.endpoints[m["id"]]
        deployed = body["deployedModel"] | {"id": self._next()}
        split = dict(body.get("trafficSplit") or {"0": 100})
        split[deployed["id"]] = split.pop("0", 0)
        endpoint["deployedModels"].append(deployed)
        endpoint["trafficSplit"] = {k: v for k, v in split.items() if v}
        return 200, self._operation(
            m, f"endpoints/{m['id']}", {"deployedModel": deployed}, "DeployModelResponse"
        )

    def _undeploy(self, call: Call, m: re.Match) -> tuple[int, Any]:
        body = call.json()
        endpoint = self.endpoints[m["id"]]
        gone = body["deployedModelId"]
        endpoint["deployedModels"] = [d for d in endpoint["deployedModels"] if d["id"] != gone]
        if "trafficSplit" in body:
            endpoint["trafficSplit"] = {k: v for k, v in body["trafficSplit"].items() if v}
        endpoint["trafficSplit"].pop(gone, None)
        return 200, self._operation(m, f"endpoints/{m['id']}", {}, "UndeployModelResponse")

    def add_deployed(self, endpoint_name: str, model: str, percent: int = 100) -> str:
        """Seed an endpoint that already serves ``model`` (an old champion)."""
        endpoint_id = self._next()
        deployed_id = self._next()
        self.endpoints[endpoint_id] = {
            "name": f"projects/p/locations/us-central1/endpoints/{endpoint_id}",
            "displayName": endpoint_name,
            "deployedModels": [{"id": deployed_id, "model": model, "displayName": "old"}],
            "trafficSplit": {deployed_id: percent},
        }
        return deployed_id


# ------------------------------------------------------------------------------- BigQuery


@dataclass
class FakeBigQuery(RecordingServer):
    """tables.get, tabledata.list and jobs.query for one in-memory table."""

    schema: list[dict] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        RecordingServer.__init__(self)
        base = r"/bigquery/v2/projects/(?P<project>[^/]+)"
        table = base + r"/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)"
        self.route("GET", table, self._get_table)
        self.route("GET", table + "/data", self._list_rows)
        self.route("POST", base + "/queries", self._query)
        self.route("GET", base + r"/queries/(?P<job>[^/]+)", self._query_results)

    def _table_ref(self, m: re.Match) -> dict:
        return {"projectId": m["project"], "datasetId": m["dataset"], "tableId": m["table"]}

    def _get_table(self, call: Call, m: re.Match) -> tuple[int, Any]:
        if f"{m['project']}.{m['dataset']}.{m['table']}" not in self.tables:
            return error(404, f"Not found: Table {m['project']}:{m['dataset']}.{m['table']}")
        return 200, {
            "kind": "bigquery#table",
            "id": f"{m['project']}:{m['dataset']}.{m['table']}",
            "tableReference": self._table_ref(m),
            "schema": {"fields": self.schema},
            "numRows": str(len(self.rows)),
            "type": "TABLE",
        }

    def _rows(self, limit: int | None) -> list[dict]:
        rows = self.rows[:limit] if limit else self.rows
        return [{"f": [{"v": None if v is None else str(v)} for v in row]} for row in rows]

    def _list_rows(self, call: Call, m: re.Match) -> tuple[int, Any]:
        limit = int((call.query.get("maxResults") or [0])[0]) or None
        return 200, {"totalRows": str(len(self.rows)), "rows": self._rows(limit)}

    def _query(self, call: Call, m: re.Match) -> tuple[int, Any]:
        body = call.json()
        if "FROM" not in body["query"].upper():
            return error(400, "Syntax error: Expected keyword FROM")
        limit = body.get("maxResults")
        return 200, {
            "kind": "bigquery#queryResponse",
            "jobReference": {"projectId": m["project"], "jobId": "job1", "location": "US"},
            "jobComplete": True,
            "schema": {"fields": self.schema},
            "totalRows": str(len(self.rows)),
            "rows": self._rows(limit),
        }

    def _query_results(self, call: Call, m: re.Match) -> tuple[int, Any]:
        return 200, {"jobComplete": True, "schema": {"fields": self.schema}, "rows": []}


# ------------------------------------------------------------------------------------ KFP


@dataclass
class FakeKfp(RecordingServer):
    """The KFP v2beta1 REST API: healthz, experiments, runs."""

    run_states: list[str] = field(default_factory=lambda: ["SUCCEEDED"])
    experiments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    _gets: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        RecordingServer.__init__(self)
        api = "/apis/v2beta1"
        self.route("GET", api + "/healthz", lambda c, m: (200, {"multi_user": False}))
        self.route("GET", api + "/experiments", self._list_experiments)
        self.route("POST", api + "/experiments", self._create_experiment)
        self.route("POST", api + "/runs", self._create_run)
        self.route("GET", api + r"/runs/(?P<id>[^/]+)", self._get_run)

    def _list_experiments(self, call: Call, m: re.Match) -> tuple[int, Any]:
        raw = (call.query.get("filter") or [""])[0]
        wanted = None
        if raw:
            flt = json.loads(raw)
            for pred in flt.get("predicates", []):
                if pred.get("key") == "display_name":
                    wanted = pred.get("string_value") or pred.get("stringValue")
        found = [e for e in self.experiments.values() if wanted in (None, e["display_name"])]
        return 200, {"experiments": found, "total_size": len(found)}

    def _create_experiment(self, call: Call, m: re.Match) -> tuple[int, Any]:
        body = call.json()
        exp = body | {"experiment_id": f"exp-{len(self.experiments) + 1}"}
        self.experiments[exp["experiment_id"]] = exp
        return 200, exp

    def _create_run(self, call: Call, m: re.Match) -> tuple[int, Any]:
        run = call.json() | {"run_id": f"run-{len(self.runs) + 1}", "state": "PENDING"}
        run["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.runs[run["run_id"]] = run
        return 200, run

    def _get_run(self, call: Call, m: re.Match) -> tuple[int, Any]:
        run = copy.deepcopy(self.runs[m["id"]])
        n = self._gets[m["id"]] = self._gets.get(m["id"], 0) + 1
        run["state"] = self.run_states[min(n, len(self.run_states)) - 1]
        if run["state"] == "FAILED":
            run["error"] = {"code": 9, "message": "task train failed"}
        return 200, run


# ----------------------------------------------------------------------------- Kubernetes


@dataclass
class FakeKube(RecordingServer):
    """Discovery, Deployments, Services and (optionally) KServe InferenceServices."""

    kserve: bool = False
    forbidden: bool = False
    objects: dict[tuple[str, str, str], dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        RecordingServer.__init__(self)
        ns = r"/namespaces/(?P<ns>[^/]+)/(?P<kind>[a-z]+)"
        for prefix in (r"/apis/apps/v1", r"/api/v1", r"/apis/serving\.kserve\.io/v1beta1"):
            self.route("POST", prefix + ns, self._create)
            self.route("PATCH", prefix + ns + r"/(?P<name>[^/]+)", self._patch)
            self.route("GET", prefix + ns + r"/(?P<name>[^/]+)", self._get)
        self.route("GET", r"/apis/?", self._groups)

    def _groups(self, call: Call, m: re.Match) -> tuple[int, Any]:
        groups = [{"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}]}]
        if self.kserve:
            groups.append(
                {
                    "name": "serving.kserve.io",
                    "versions": [
                        {"groupVersion": "serving.kserve.io/v1beta1", "version": "v1beta1"}
                    ],
                }
            )
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _create(self, call: Call, m: re.Match) -> tuple[int, Any]:
        body = call.json()
        key = (m["ns"], m["kind"], body["metadata"]["name"])
        if key in self.objects:
            return 409, {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "AlreadyExists",
                "code": 409,
            }
        self.objects[key] = body
        return 201, body

    def _patch(self, call: Call, m: re.Match) -> tuple[int, Any]:
        key = (m["ns"], m["kind"], m["name"])
        if call.headers.get("content-type") == "application/apply-patch+yaml":
            if self.forbidden:
                return 403, {
                    "kind": "Status",
                    "status": "Failure",
                    "reason": "Forbidden",
                    "code": 403,
                }
            self.objects[key] = call.json()  # server-side apply: create or replace our fields
            return 200, self.objects[key]
        if key not in self.objects:
            return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
        self.objects[key] = _merge(self.objects[key], call.json())
        return 200, self.objects[key]

    def _get(self, call: Call, m: re.Match) -> tuple[int, Any]:
        key = (m["ns"], m["kind"], m["name"])
        if key not in self.objects:
            return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
        return 200, self.objects[key]


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return patch
