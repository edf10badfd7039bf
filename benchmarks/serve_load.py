"""Load benchmark of the prediction server against the framework floor.

Trains a digits bundle (the default MLP, 256-128), registers it in a temporary registry,
starts `python -m components.serving` as its own process on a free loopback port with the
benchmark-only POST /noop route (same app, reads the body, answers a constant), and drives
it from a separate load-generator process: `wrk` (Debian: apt-get install -y wrk) when it is
installed, else a small asyncio HTTP/1.1 client in a subprocess.

Figures are medians over --repeats runs of --duration seconds, ours and the no-op route
interleaved so that other load on the machine hits both alike:

    single_p50_c8        single-instance requests, 8 connections: median latency
    single_p99_c8        ... 99th percentile latency
    single_rps_c8        ... requests per second
    batch1000_rows_c4    1,000-row requests, 4 connections: rows per second vs no-op
    batch_rows_per_s     the same rows per second against the 50,000 rows/s target

Each comparison is one line: ``NAME: ours=VALUE UNIT PEER=VALUE UNIT ratio=R`` (ours/peer).

    python benchmarks/serve_load.py [--duration 5] [--repeats 3] [--client auto|wrk|python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODEL = "digits-mlp"
BATCH_ROWS = 1000
TARGET_ROWS_PER_S = 50_000


def build_registry(root: Path) -> tuple[Path, list[list[int]]]:
    """A registry whose champion is a digits MLP; returns it and raw rows to send."""
    sys.path.insert(0, str(REPO))
    from components.core.data.features import feature_statistics, fit_preprocessor
    from components.core.data.sources import load_source
    from components.core.data.split import SplitConfig, split_frame
    from components.core.evaluation.metrics import encode_labels
    from components.core.model.bundle import save_bundle
    from components.core.registry import LocalRegistry
    from components.core.training.config import TrainConfig
    from components.core.training.train import train_mlp

    frame = load_source("sklearn:digits", "label")
    parts = split_frame(frame, "label", SplitConfig())
    train, val = parts["train"], parts["val"]
    pre = fit_preprocessor(train, "label")
    classes = sorted(train["label"].unique().tolist())
    result = train_mlp(
        pre.transform(train),
        encode_labels(train["label"], classes),
        pre.transform(val),
        encode_labels(val["label"], classes),
        len(classes),
        TrainConfig(max_epochs=5),
    )
    bundle = save_bundle(
        root / "bundle",
        result.network,
        pre,
        classes,
        "label",
        extra={"name": MODEL, "feature_statistics": feature_statistics(train, pre)},
    )
    registry = root / "registry"
    LocalRegistry(registry, MODEL).register(bundle, {"deploy": True})
    rows = frame.drop(columns="label").to_numpy().astype(int).tolist()  # pixels are 0..16
    return registry, rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(registry: Path, port: int, threads: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "components.serving",
        "--registry",
        str(registry),
        "--model-name",
        MODEL,
        "--port",
        str(port),
        "--noop-route",
        "--threads",
        str(threads),
        "--log-level",
        "warning",
    ]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            health = _get(port, "/health")
            if health.get("status") == "ok":
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not become healthy in 120 s")


def _get(port: int, path: str) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")


# --- load generators: each returns {"p50_ms", "p99_ms", "rps", "errors"} ---


def run_wrk(
    port: int, path: str, bodies: list[bytes], connections: int, duration: float, workdir: Path
) -> dict[str, float]:
    script = workdir / "post.lua"
    quoted = ",\n".join(f"[==[{b.decode()}]==]" for b in bodies)
    script.write_text(
        f"local bodies = {{\n{quoted}\n}}\nlocal i = 0\n"
        'local headers = {["Content-Type"] = "application/json"}\n'
        "request = function()\n  i = i % #bodies + 1\n"
        f'  return wrk.format("POST", "{path}", headers, bodies[i])\nend\n'
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:.0f}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lat = {
        m.group(1): _ms(m.group(2)) for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M)
    }
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors:.*", out)
    errors = int(bad.group(1)) if bad else 0
    if sock:
        errors += sum(int(n) for n in re.findall(r"\d+", sock.group(0)))
    return {"p50_ms": lat["50"], "p99_ms": lat["99"], "rps": rps, "errors": errors}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_python_client(
    port: int, path: str, bodies: list[bytes], connections: int, duration: float, workdir: Path
) -> dict[str, float]:
    """This file's own asyncio client, in a separate process."""
    body_file = workdir / "bodies.json"
    body_file.write_text(json.dumps([b.decode() for b in bodies]))
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "_client",
            str(port),
            path,
            str(body_file),
            str(connections),
            str(duration),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


async def _client_main(
    port: int, path: str, bodies: list[bytes], connections: int, duration: float
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def connection(offset: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        while time.perf_counter() < deadline:
            body = bodies[i % len(bodies)]
            i += 1
            head = (
                f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            start = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            header = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", header).group(1))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not header.startswith(b"HTTP/1.1 200"):
                errors += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(k) for k in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "p50_ms": 1e3 * latencies[len(latencies) // 2],
        "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "rps": len(latencies) / elapsed,
        "errors": errors,
    }


# --- the benchmark ---


def measure(
    client,
    port: int,
    bodies: dict[str, list[bytes]],
    connections: int,
    duration: float,
    repeats: int,
    workdir: Path,
) -> tuple[dict[str, dict[str, float]], int]:
    """Median figures per route over the repeats (routes interleaved) and all errors."""
    runs: dict[str, list[dict[str, float]]] = {"/noop": [], "/predict": []}
    for path in runs:  # warm-up: first requests pay for lazy imports and caches
        client(port, path, bodies[path], connections, 1, workdir)
    for _ in range(repeats):
        for path in runs:
            runs[path].append(client(port, path, bodies[path], connections, duration, workdir))
    medians = {
        path: {k: statistics.median(r[k] for r in results) for k in results[0]}
        for path, results in runs.items()
    }
    return medians, int(sum(r["errors"] for results in runs.values() for r in results))


def line(name: str, ours: float, peer_name: str, peer: float, unit: str) -> str:
    return (
        f"{name}: ours={_fmt(ours)} {unit} {peer_name}={_fmt(peer)} {unit} ratio={ours / peer:.3g}"
    )


def _fmt(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--threads", type=int, default=1, help="server network threads")
    args = parser.parse_args(argv)
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    client = run_wrk if use_wrk else run_python_client

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        workdir = Path(tmp)
        registry, rows = build_registry(workdir)
        # every 4th row of the data set, so that the served mix looks like training
        single = [json.dumps({"instances": [r]}).encode() for r in rows[::4]]
        batch = [json.dumps({"instances": rows[k : k + BATCH_ROWS]}).encode() for k in (0, 700)]
        port = free_port()
        server = start_server(registry, port, args.threads)
        try:
            backend = _get(port, "/health").get("backend")
            print(
                f"# client={'wrk' if use_wrk else 'python-asyncio'} backend={backend} "
                f"cpus={os.cpu_count()} loadavg={os.getloadavg()[0]:.2f} "
                f"duration={args.duration:.0f}s repeats={args.repeats}",
                flush=True,
            )
            s, errors_s = measure(
                client,
                port,
                {"/noop": single, "/predict": single},
                8,
                args.duration,
                args.repeats,
                workdir,
            )
            b, errors_b = measure(
                client,
                port,
                {"/noop": batch, "/predict": batch},
                4,
                args.duration,
                args.repeats,
                workdir,
            )
        finally:
            server.terminate()
            server.wait(30)
    ours, noop = s["/predict"], s["/noop"]
    print(line("single_p50_c8", ours["p50_ms"], "noop", noop["p50_ms"], "ms"))
    print(line("single_p99_c8", ours["p99_ms"], "noop", noop["p99_ms"], "ms"))
    print(line("single_rps_c8", ours["rps"], "noop", noop["rps"], "req/s"))
    rows_ours, rows_noop = b["/predict"]["rps"] * BATCH_ROWS, b["/noop"]["rps"] * BATCH_ROWS
    print(line("batch1000_p50_c4", b["/predict"]["p50_ms"], "noop", b["/noop"]["p50_ms"], "ms"))
    print(line("batch1000_rows_c4", rows_ours, "noop", rows_noop, "rows/s"))
    print(line("batch_rows_per_s", rows_ours, "target", TARGET_ROWS_PER_S, "rows/s"))
    print(f"# errors (non-2xx responses or socket errors) in all runs: {errors_s + errors_b}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        port, path, body_file, conns, dur = sys.argv[2:7]
        payload = [b.encode() for b in json.loads(Path(body_file).read_text())]
        print(
            json.dumps(asyncio.run(_client_main(int(port), path, payload, int(conns), float(dur))))
        )
        sys.exit(0)
    sys.exit(main())
