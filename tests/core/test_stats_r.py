"""Cross-check of components.core.evaluation.stats.delong against R's pROC on random data sets.

Runs ``Rscript`` once for all data sets and compares AUCs, z and p-values to 1e-9. Skipped
when R or the pROC package is not installed (Debian: r-base-core r-cran-proc); the pinned
pROC values in test_stats.py still run everywhere.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from components.core.evaluation import stats

R_SCRIPT = r"""
suppressMessages(library(pROC))
args <- commandArgs(trailingOnly = TRUE)
for (path in args) {
  d <- read.csv(path)
  r1 <- roc(d$y, d$a, levels = c(0, 1), direction = "<", quiet = TRUE)
  r2 <- roc(d$y, d$b, levels = c(0, 1), direction = "<", quiet = TRUE)
  for (alt in c("greater", "two.sided")) {
    t <- roc.test(r1, r2, method = "delong", paired = TRUE, alternative = alt)
    cat(sprintf("%s %s %.17g %.17g %.17g %.17g\n", basename(path), alt, as.numeric(auc(r1)),
                as.numeric(auc(r2)), t$statistic, t$p.value))
  }
}
"""

# (seed, rows, decimals the scores are rounded to: few decimals = many ties)
DATA_SETS = [(0, 40, 1), (1, 200, 2), (2, 500, 8), (3, 1500, 3), (4, 3000, 12), (5, 60, 0)]


def _data_set(seed: int, n: int, decimals: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rng.uniform(0.2, 0.6)).astype(int)
    y[:2], y[2:4] = 1, 0
    a = np.round(rng.normal(size=n) + rng.uniform(0.3, 1.5) * y, decimals)
    b = np.round(rng.normal(size=n) + rng.uniform(0.3, 1.5) * y, decimals)
    return y, a, b


@pytest.fixture(scope="module")
def proc_results(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[float]]:
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.skip("Rscript not found; install R (r-base-core) to cross-check DeLong with pROC")
    probe = subprocess.run(
        [rscript, "-e", 'quit(status = !requireNamespace("pROC", quietly = TRUE))'],
        capture_output=True,
        timeout=120,
    )
    if probe.returncode != 0:
        pytest.skip("R package pROC not installed (r-cran-proc); skipping the pROC cross-check")
    folder: Path = tmp_path_factory.mktemp("proc")
    paths = []
    for seed, n, decimals in DATA_SETS:
        y, a, b = _data_set(seed, n, decimals)
        path = folder / f"set{seed}.csv"
        np.savetxt(path, np.column_stack([y, a, b]), delimiter=",", header="y,a,b",
                   comments="", fmt=["%d", "%.17g", "%.17g"])  # fmt: skip
        paths.append(str(path))
    script = folder / "delong.R"
    script.write_text(R_SCRIPT)
    run = subprocess.run(
        [rscript, str(script), *paths], capture_output=True, text=True, timeout=300, check=True
    )
    results = {}
    for line in run.stdout.splitlines():
        name, alt, *values = line.split()
        results[(name, alt)] = [float(v) for v in values]
    return results


@pytest.mark.parametrize(("seed", "n", "decimals"), DATA_SETS)
@pytest.mark.parametrize(
    ("alternative", "r_alternative"), [("greater", "greater"), ("two-sided", "two.sided")]
)
def test_delong_agrees_with_proc(proc_results, seed, n, decimals, alternative, r_alternative):
    auc1, auc2, z, p = proc_results[(f"set{seed}.csv", r_alternative)]
    y, a, b = _data_set(seed, n, decimals)
    res = stats.delong(y, a, b, alternative=alternative)
    assert res.auc_challenger == pytest.approx(auc1, abs=1e-9)
    assert res.auc_champion == pytest.approx(auc2, abs=1e-9)
    assert res.statistic == pytest.approx(z, abs=1e-9)
    assert res.pvalue == pytest.approx(p, abs=1e-9)
