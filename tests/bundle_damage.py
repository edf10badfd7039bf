"""Ways a digits bundle can be damaged after training (or trained broken), and the clause the
one-line refusal of every reader must carry (register, evaluate, predict, serve): one
catalogue, so that each entry point is tested against the same damage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.core.bundle_format import write_manifest

Edit = Callable[[Path], None]


def edit_json(name: str, change: Callable[[Any], Any]) -> Edit:
    def edit(folder: Path) -> None:
        obj = json.loads((folder / name).read_text())
        change(obj)
        (folder / name).write_text(json.dumps(obj))

    return edit


def flip_weight_bytes(folder: Path) -> None:
    raw = bytearray((folder / "model.safetensors").read_bytes())
    start = 8 + int.from_bytes(raw[:8], "little")  # after the safetensors header
    for k in range(start + 100, start + 400, 7):
        raw[k] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(raw))


def set_weight(key: str, index: int, value: float) -> Edit:
    def edit(folder: Path) -> None:
        from safetensors.numpy import load_file, save_file

        weights = load_file(str(folder / "model.safetensors"))
        weights[key] = weights[key].copy()
        weights[key].reshape(-1)[index] = value
        save_file(weights, str(folder / "model.safetensors"))

    return edit


def set_item(name: str, key: str, index: int, value: Any) -> Edit:
    def change(obj: Any) -> None:
        obj[key][index] = value

    return edit_json(name, change)


def rewritten(edit: Edit) -> Edit:
    """``edit``, then a manifest written again over it: a bundle trained that way, or
    tampered with by someone who knew to refresh the manifest."""

    def both(folder: Path) -> None:
        edit(folder)
        write_manifest(folder)

    return both


def reverse_classes(meta: dict[str, Any]) -> None:
    meta["classes"] = meta["classes"][::-1]


def shift_means(pre: dict[str, Any]) -> None:
    pre["means"] = [m + 3.0 for m in pre["means"]]


def remove_manifest(folder: Path) -> None:
    (folder / "manifest.json").unlink()


def make_old(folder: Path) -> None:
    """``folder`` as a bundle written before sigdeploy kept a manifest: none, and bundle.json
    does not name one."""
    remove_manifest(folder)
    edit_json("bundle.json", lambda meta: meta.pop("manifest"))(folder)


def mismatch(name: str) -> str:
    return f"{name} does not match its sha256 in manifest.json (it changed after training)"


NAN = float("nan")
# what -> (how to damage a copy of a digits bundle, the clause its refusal names)
DAMAGES: dict[str, tuple[Edit, str]] = {
    "flipped weight bytes": (flip_weight_bytes, mismatch("model.safetensors")),
    "NaN bias": (set_weight("net.0.bias", 0, NAN), mismatch("model.safetensors")),
    "NaN bias, manifest rewritten": (
        rewritten(set_weight("net.0.bias", 0, NAN)),
        "model.safetensors holds 1 NaN or infinite value(s) in net.0.bias",
    ),
    "zero scale": (set_item("preprocessor.json", "scales", 10, 0.0), mismatch("preprocessor.json")),
    "zero scale, manifest rewritten": (
        rewritten(set_item("preprocessor.json", "scales", 10, 0.0)),
        "preprocessor.json scale of 'pixel_1_2' is 0.0, not positive",
    ),
    "reversed class labels": (edit_json("bundle.json", reverse_classes), mismatch("bundle.json")),
    "a class fewer, manifest rewritten": (
        rewritten(edit_json("bundle.json", lambda meta: meta["classes"].pop())),
        "bundle.json lists 9 classes but the network has 10 outputs",
    ),
    "edited preprocessor.json": (
        edit_json("preprocessor.json", shift_means),
        mismatch("preprocessor.json"),
    ),
    "missing manifest": (
        remove_manifest,
        "manifest.json is missing, though bundle.json says the bundle was written with one",
    ),
}


def assert_one_line(message: str, folder: Path | str, clause: str) -> None:
    """A refusal names the bundle and what is wrong with it, in one line."""
    assert message.startswith(f"model bundle '{folder}': "), message
    assert clause in message and "\n" not in message, message
