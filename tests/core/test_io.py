"""Atomic writes and strict JSON."""

from __future__ import annotations

import pytest

from components.core.io import atomic_path, read_json, write_json


def test_json_files_are_strict_json(tmp_path):
    import numpy as np

    write_json(
        tmp_path / "d.json", {"auc": float("nan"), "ci": np.array([0.1, np.inf]), "n": np.int64(3)}
    )
    assert read_json(tmp_path / "d.json") == {"auc": None, "ci": [0.1, None], "n": 3}


def test_failed_write_leaves_neither_file_nor_temp(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []
