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

Then memory, each on a fresh server (Linux: /proc/PID/status VmHWM, reset through
/proc/PID/clear_refs), the predict route beside the no-op route, which only reads the body:

    peak_rss_per_mib_floats   peak RSS growth for one 10 MiB body of rows of long floats,
                              per MiB of body (--body-mib sets the size)
    peak_rss_per_mib_lists    the same for 10 MiB of one-number lists ``[0],[0],...``
                              (the worst case of whole-body parsing; refused with a 413)
    peak_rss_16x_floats       peak RSS of the server while 16 such float bodies arrive at
                              once (--parallel), against a kind pod's 512 MiB

With ``--baseline DIR`` (another checkout, e.g. ``git worktree add /tmp/old HEAD``), the
server of DIR is measured too, interleaved with ours, and each figure is also printed as
``NAME_vs_before: ours=... before=... ratio=...``; its own no-op comparisons are comments.

Each comparison is one line: ``NAME: ours=VALUE UNIT PEER=VALUE UNIT ratio=R`` (ours/peer).

    python benchmarks/serve_load.py [--duration 5] [--repeats 3] [--client auto|wrk|python]
        [--baseline DIR] [--body-mib 10] [--parallel 16]
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
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODEL = "digits-mlp"
BATCH_ROWS = 1000
TARGET_ROWS_PER_S = 50_000
MIB = 1 << 20
POD_LIMIT_MB = 512 * MIB / 1e6  # the kind serving pod's memory limit (kube.KubeServing)


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


def start_server(
    registry: Path, port: int, threads: int, tree: Path = REPO
) -> subprocess.Popen[bytes]:
    """``python -m components.serving`` of the checkout ``tree``, once it is healthy."""
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
    env = os.environ | {"PYTHONPATH": str(tree)}
    proc = subprocess.Popen(cmd, env=env, cwd=tree)
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
    ports: dict[str, int],
    bodies: list[bytes],
    connections: int,
    duration: float,
    repeats: int,
    workdir: Path,
) -> tuple[dict[tuple[str, str], dict[str, float]], int]:
    """Median figures per (server, route) over the repeats (all interleaved), all errors."""
    keys = [(name, path) for name in ports for path in ("/noop", "/predict")]
    runs: dict[tuple[str, str], list[dict[str, float]]] = {key: [] for key in keys}
    for name, path in keys:  # warm-up: first requests pay for lazy imports and caches
        client(ports[name], path, bodies, connections, 1, workdir)
    for _ in range(repeats):
        for name, path in keys:
            result = client(ports[name], path, bodies, connections, duration, workdir)
            runs[name, path].append(result)
    medians = {
        key: {k: statistics.median(r[k] for r in results) for k in results[0]}
        for key, results in runs.items()
    }
    return medians, int(sum(r["errors"] for results in runs.values() for r in results))


# --- memory: peak RSS of a fresh server while it takes large bodies ---


def _proc_status(pid: int, key: str) -> float:
    """A VmRSS / VmHWM figure of /proc/PID/status, in MB."""
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        if text.startswith(key + ":"):
            return int(text.split()[1]) * 1024 / 1e6
    raise KeyError(key)


def _post(port: int, path: str, body: bytes) -> int:
    """POST ``body`` on a connection of its own; the response status (0 if none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0


def peak_rss(
    tree: Path, registry: Path, threads: int, path: str, body: bytes, parallel: int
) -> tuple[float, float, set[int]]:
    """(idle RSS, peak RSS) in MB of a fresh server of ``tree`` while ``parallel`` clients
    send it ``body`` at once, and the statuses they got."""
    port = free_port()
    server = start_server(registry, port, threads, tree)
    try:
        _post(port, path, b'{"instances": [[0]]}')  # first request: lazy imports
        time.sleep(0.5)
        idle = _proc_status(server.pid, "VmRSS")
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        statuses: list[int] = []
        senders = [
            threading.Thread(target=lambda: statuses.append(_post(port, path, body)))
            for _ in range(parallel)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        return idle, _proc_status(server.pid, "VmHWM"), set(statuses)
    finally:
        server.terminate()
        server.wait(30)


def float_body(rows: list[list[int]], size: int, max_rows: int = 10_000) -> bytes:
    """Up to ``size`` bytes of ``{"instances": [...]}``: the rows as floats of ~17 digits
    (pixel + noise), as json.dumps writes arrays of float64."""
    import numpy as np

    noisy = np.asarray(rows, np.float64) + np.random.default_rng(0).random((len(rows), 64))
    texts = [json.dumps(r).encode() for r in noisy.tolist()]
    parts, used = [], len(b'{"instances": []}')
    while len(parts) < max_rows and used + len(texts[len(parts) % len(texts)]) + 2 <= size:
        parts.append(texts[len(parts) % len(texts)])
        used += len(parts[-1]) + 2
    return b'{"instances": [' + b", ".join(parts) + b"]}"


def list_body(size: int) -> bytes:
    """``size`` bytes of one-number lists: the body that whole-body parsing costs most."""
    n = (size - len(b'{"instances":[]}')) // 4
    return b'{"instances":[' + b",".join([b"[0]"] * n) + b"]}"


def memory_lines(
    trees: dict[str, Path], registry: Path, threads: int, rows: list[list[int]], args
) -> tuple[list[str], list[str]]:
    """The memory comparison lines, and the statuses that were not the expected ones."""
    size = int(args.body_mib * MIB)
    floats, lists = float_body(rows, size), list_body(size)
    mib = {"floats": len(floats) / MIB, "lists": len(lists) / MIB}
    # one-number lists are 1-wide instances: predict refuses them (413), no-op reads them
    expect = {("floats", "/predict"): 200, ("lists", "/predict"): 413}
    per_mib: dict[tuple[str, str, str], float] = {}
    peak: dict[tuple[str, str], float] = {}
    wrong: list[str] = []
    for name, tree in trees.items():
        for path in ("/noop", "/predict"):
            for kind, body in (("floats", floats), ("lists", lists)):
                idle, top, statuses = peak_rss(tree, registry, threads, path, body, 1)
                per_mib[name, path, kind] = (top - idle) / mib[kind]
                if statuses != {expect.get((kind, path), 200)}:
                    wrong.append(f"{name} {path} {kind}: {sorted(statuses)}")
            idle, top, statuses = peak_rss(tree, registry, threads, path, floats, args.parallel)
            peak[name, path] = top
            if not statuses <= {200, 503}:  # 503: a body budget turned some away
                wrong.append(f"{name} {path} {args.parallel}x floats: {sorted(statuses)}")
    sizes = ", ".join(f"{kind} {size:.2f} MiB" for kind, size in mib.items())
    out = [f"# bodies: {sizes}"]
    for name in trees:
        prefix = "" if name == "ours" else f"# {name}: "
        for kind in ("floats", "lists"):
            out.append(
                prefix
                + line(
                    f"peak_rss_per_mib_{kind}",
                    per_mib[name, "/predict", kind],
                    "noop",
                    per_mib[name, "/noop", kind],
                    "MB/MiB",
                )
            )
        out.append(
            prefix
            + line(
                f"peak_rss_{args.parallel}x_floats",
                peak[name, "/predict"],
                "noop",
                peak[name, "/noop"],
                "MB",
            )
        )
    out.append(f"# kind pod memory limit: {POD_LIMIT_MB:.0f} MB")
    if "before" in trees:
        for kind in ("floats", "lists"):
            ours, before = per_mib["ours", "/predict", kind], per_mib["before", "/predict", kind]
            out.append(line(f"peak_rss_per_mib_{kind}_vs_before", ours, "before", before, "MB/MiB"))
        ours, before = peak["ours", "/predict"], peak["before", "/predict"]
        out.append(
            line(f"peak_rss_{args.parallel}x_floats_vs_before", ours, "before", before, "MB")
        )
    return out, wrong


def line(name: str, ours: float, peer_name: str, peer: float, unit: str) -> str:
    ratio = ours / peer if peer > 0 else float("inf")
    return f"{name}: ours={_fmt(ours)} {unit} {peer_name}={_fmt(peer)} {unit} ratio={ratio:.3g}"


def _fmt(value: float) -> str:
    value = max(value, 0.0)  # a peak RSS growth can read a hair below zero
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def load_lines(
    figures: dict[tuple[str, str], dict[str, float]], name: str, batch: bool
) -> list[str]:
    """The load comparison lines of server ``name`` against its no-op route."""
    ours, noop = figures[name, "/predict"], figures[name, "/noop"]
    if not batch:
        return [
            line("single_p50_c8", ours["p50_ms"], "noop", noop["p50_ms"], "ms"),
            line("single_p99_c8", ours["p99_ms"], "noop", noop["p99_ms"], "ms"),
            line("single_rps_c8", ours["rps"], "noop", noop["rps"], "req/s"),
        ]
    rows_ours, rows_noop = ours["rps"] * BATCH_ROWS, noop["rps"] * BATCH_ROWS
    return [
        line("batch1000_p50_c4", ours["p50_ms"], "noop", noop["p50_ms"], "ms"),
        line("batch1000_rows_c4", rows_ours, "noop", rows_noop, "rows/s"),
        line("batch_rows_per_s", rows_ours, "target", TARGET_ROWS_PER_S, "rows/s"),
    ]


def versus_before(figures: dict[tuple[str, str], dict[str, float]], batch: bool) -> list[str]:
    """Our predict route against the baseline checkout's, figure by figure."""
    ours, before = figures["ours", "/predict"], figures["before", "/predict"]
    if not batch:
        return [
            line("single_p50_c8_vs_before", ours["p50_ms"], "before", before["p50_ms"], "ms"),
            line("single_p99_c8_vs_before", ours["p99_ms"], "before", before["p99_ms"], "ms"),
            line("single_rps_c8_vs_before", ours["rps"], "before", before["rps"], "req/s"),
        ]
    return [
        line("batch1000_p50_c4_vs_before", ours["p50_ms"], "before", before["p50_ms"], "ms"),
        line(
            "batch1000_rows_c4_vs_before",
            ours["rps"] * BATCH_ROWS,
            "before",
            before["rps"] * BATCH_ROWS,
            "rows/s",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--threads", type=int, default=1, help="server network threads")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout to measure too (the code before)"
    )
    parser.add_argument("--body-mib", type=float, default=10.0, help="memory test body size")
    parser.add_argument("--parallel", type=int, default=16, help="bodies sent at once")
    args = parser.parse_args(argv)
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    client = run_wrk if use_wrk else run_python_client
    trees = {"ours": REPO}
    if args.baseline:
        trees["before"] = args.baseline.resolve()

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        workdir = Path(tmp)
        registry, rows = build_registry(workdir)
        # every 4th row of the data set, so that the served mix looks like training
        single = [json.dumps({"instances": [r]}).encode() for r in rows[::4]]
        batch = [json.dumps({"instances": rows[k : k + BATCH_ROWS]}).encode() for k in (0, 700)]
        ports = {name: free_port() for name in trees}
        servers = [start_server(registry, ports[n], args.threads, t) for n, t in trees.items()]
        try:
            backend = _get(ports["ours"], "/health").get("backend")
            print(
                f"# client={'wrk' if use_wrk else 'python-asyncio'} backend={backend} "
                f"cpus={os.cpu_count()} loadavg={os.getloadavg()[0]:.2f} "
                f"duration={args.duration:.0f}s repeats={args.repeats}"
                + (f" baseline={trees['before']}" if args.baseline else ""),
                flush=True,
            )
            s, errors_s = measure(client, ports, single, 8, args.duration, args.repeats, workdir)
            b, errors_b = measure(client, ports, batch, 4, args.duration, args.repeats, workdir)
        finally:
            for server in servers:
                server.terminate()
                server.wait(30)
        for figures, is_batch in ((s, False), (b, True)):
            print("\n".join(load_lines(figures, "ours", is_batch)))
            if args.baseline:
                print(
                    "\n".join(
                        f"# before: {text}" for text in load_lines(figures, "before", is_batch)
                    )
                )
                print("\n".join(versus_before(figures, is_batch)))
        print(f"# errors (non-2xx responses or socket errors) in all runs: {errors_s + errors_b}")
        if not Path("/proc/self/clear_refs").exists():
            print("# memory figures need Linux (/proc/PID/status and clear_refs): skipped")
            return 0
        lines, wrong = memory_lines(trees, registry, args.threads, rows, args)
        print("\n".join(lines))
        print(f"# unexpected statuses in the memory runs: {'; '.join(wrong) or 'none'}")
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
