"""The KFP local runner's overhead: `sigdeploy run` against the same five steps in one process.

Both sides start a fresh interpreter and run ingest → preprocess → train → evaluate → deploy
on the embedded digits data into a fresh registry (so both deploy), measured side by side,
alternating, median of --repeats runs.

    python benchmarks/local_run.py [--repeats 3]

Prints: local_run_digits: ours=S s in_process=S s ratio=R   (target: ours < 60 s, R < 3)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IN_PROCESS = r"""
import sys
from pathlib import Path
from components.core import steps
from components.core.data.sources import SourceConfig
from components.core.data.features import FeatureConfig
from components.core.data.split import SplitConfig
from components.core.evaluation.gate import GatePolicy
from components.core.platforms.deploy_config import DeployConfig
from components.core.registry import RegistryConfig
from components.core.training.config import TrainConfig

work = Path(sys.argv[1])
split = SplitConfig()
steps.ingest(SourceConfig(), split, str(work / "data.parquet"))
steps.preprocess(str(work / "data.parquet"), "label", split, FeatureConfig(),
                 str(work / "train.parquet"), str(work / "val.parquet"), str(work / "test.parquet"),
                 str(work / "pre.json"))
steps.train(str(work / "train.parquet"), str(work / "val.parquet"), str(work / "pre.json"),
            "label", TrainConfig(), str(work / "model"), "digits-mlp", str(work / "ckpt"))
ev = steps.evaluate(str(work / "model"), str(work / "train.parquet"), str(work / "test.parquet"),
                    str(work / "registry"), "digits-mlp", GatePolicy(), str(work / "d.json"),
                    str(work / "r.html"), str(work / "r.md"))
assert ev.decision.deploy
steps.deploy(str(work / "model"), str(work / "d.json"),
             RegistryConfig(str(work / "registry"), "digits-mlp"), DeployConfig())
"""


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sigdeploy = str(Path(sys.executable).with_name("sigdeploy"))
    ours, peer = [], []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            ours.append(
                timed(
                    [
                        sigdeploy,
                        "run",
                        "--registry",
                        f"{tmp}/registry",
                        "--output-dir",
                        f"{tmp}/runs",
                        "--json",
                    ]
                )
            )
        with tempfile.TemporaryDirectory() as tmp:
            peer.append(timed([sys.executable, "-c", IN_PROCESS, tmp]))
        print(
            f"# repeat {i + 1}: sigdeploy run {ours[-1]:.1f} s, in one process {peer[-1]:.1f} s",
            file=sys.stderr,
        )
    o, p = statistics.median(ours), statistics.median(peer)
    print(f"local_run_digits: ours={o:.1f} s in_process={p:.1f} s ratio={o / p:.3g}")
    print(f"local_run_digits_target: ours={o:.1f} s target=60.0 s ratio={o / 60:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
