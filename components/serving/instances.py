"""Strict request decoding: JSON ``{"instances": [...]}`` straight into numpy matrices.

Each instance is either an object keyed by feature name or a list in schema order (the
order of ``bundle.json`` ``schema.features``). Numeric features take JSON numbers, and
``null`` means missing: the preprocessor imputes it with the training median, exactly as
it does for a missing value offline. Categorical features take strings, and ``null`` means
missing (imputed with the most frequent training category); a string never seen in
training is accepted and encodes to all zeros, as offline. An object may also carry the
columns the model left out on purpose (``ignored``: ID-like columns, or columns outside
``feature_columns``, as bundle.json ``inputs.columns_dropped`` lists them); their values are
ignored, as batch predict ignores them. Anything else is a :class:`BadRequest` that names
the instance index and the field, never a server error.

No DataFrame is built: a request of plain numbers in schema order is checked on its raw
bytes and converted by one ``np.array`` call; everything else takes a per-row path that
finds the first offending value.

A body over WHOLE_BODY_BYTES is not parsed whole (see ``jsonscan``): its top level is
parsed with the instances emptied, then the instances a run of about CHUNK_BYTES at a time,
each run straight into the matrices, so that the Python objects of only one run exist at
once. It is accepted exactly when a small body would be, with the same rows, except for
repeated keys that make an object instance right; and refused for the same reason, except
that, when a body has several errors, the first run with one reports it (an instance's
error before broken JSON further on), and that limits apply before any parsing: more than
``2 * max_instances + 64`` lists and objects is a 413, nesting deeper than 1024 levels or
more than 4096 values outside the lists of the top-level object a 400.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from components.serving import fastjson, jsonscan
from components.serving.errors import BadRequest
from components.serving.fastjson import NonFinite

MISSING = -1  # category code: null in the request
UNSEEN = -2  # category code: a string the model never saw in training

# Every byte a JSON array of plain numbers may contain; a body that has nothing else
# besides the "instances" key holds numbers only (no strings, true/false/null, NaN).
_NUMBER_BYTES = b"0123456789+-.eE,[] \t\r\n"
_NUMBERS_ONLY_SKELETON = b'{"instances":}'.translate(None, _NUMBER_BYTES)
_TOP_LEVEL_KEYS = frozenset({"instances", "parameters"})
CHUNK_BYTES = 256 * 1024  # a large body is parsed a run of whole instances this long at a time
WHOLE_BODY_BYTES = CHUNK_BYTES  # up to this, a body is parsed whole (at most ~8 MB of objects)
SPARE_CONTAINERS = 64  # lists and objects a large body may hold besides two per instance
_BLANK = re.compile(rb"[ \t\n\r]*")


@dataclass(frozen=True)
class Rows:
    numeric: np.ndarray  # (n, n_numeric) float64 raw values, NaN where the request had null
    codes: np.ndarray  # (n, n_categorical) int32 category index, MISSING or UNSEEN

    def __len__(self) -> int:
        return int(self.numeric.shape[0])


def parse_body(body: bytes | bytearray, max_instances: int) -> list[Any]:
    """The ``instances`` list of a request body, or BadRequest."""
    _check_not_blank(body)
    instances = _instances_of(_parse(body, body))
    _check_count(len(instances), max_instances)
    return instances


def _check_not_blank(body: bytes | bytearray) -> None:
    if _BLANK.fullmatch(body):
        raise BadRequest(400, 'request body is empty; send {"instances": [...]}', field="body")


def _parse(
    text: bytes | bytearray, body: bytes | bytearray, to_body: Callable[[int], int] | None = None
) -> Any:
    """``text`` parsed, or BadRequest; ``text`` is the body, or is made of pieces of it and
    ``to_body`` maps its byte offsets to the body's (for the error's line and column)."""
    try:
        return fastjson.loads(text)
    except RecursionError:
        raise BadRequest(400, "request body is nested too deeply", field="body") from None
    except UnicodeDecodeError:
        raise BadRequest(400, "request body is not UTF-8 text", field="body") from None
    except json.JSONDecodeError as exc:
        if to_body is None:
            where = f"line {exc.lineno} column {exc.colno}"
        else:
            offset = len(exc.doc[: exc.pos].encode("utf-8", "surrogatepass"))
            where = jsonscan.location(body, to_body(offset))
        raise BadRequest(
            400, f"request body is not valid JSON ({exc.msg} at {where})", field="body"
        ) from None


def _instances_of(obj: Any) -> Any:
    """The "instances" member of a parsed body, once the top level is as it must be."""
    if not isinstance(obj, dict) or "instances" not in obj:
        raise _no_instances_list()
    for key in obj:
        if key not in _TOP_LEVEL_KEYS:
            raise BadRequest(
                400,
                f'unknown top-level key {key!r}; send only "instances" (and "parameters")',
                field=key,
            )
    instances = obj["instances"]
    if not isinstance(instances, list):
        raise BadRequest(
            400, f'"instances" must be a list, got {_kind(instances)}', field="instances"
        )
    return instances


def _no_instances_list() -> BadRequest:
    return BadRequest(
        400, 'request body must be a JSON object with an "instances" list', field="instances"
    )


def _check_count(n: int, max_instances: int) -> None:
    if not n:
        raise BadRequest(400, '"instances" is empty; send at least one instance', field="instances")
    if n > max_instances:
        raise BadRequest(
            413,
            f"{n} instances exceed the limit of {max_instances} per request; split the request",
            field="instances",
        )


class InstanceDecoder:
    """Turns parsed instances into :class:`Rows` following one model's feature schema."""

    def __init__(
        self,
        features: Sequence[str],
        numeric: Sequence[str],
        categorical: Sequence[str],
        categories: Sequence[Sequence[str]],
        ignored: Sequence[str] = (),
        list_form: str | None = None,
    ) -> None:
        """``ignored``: keys an object instance may carry besides the features (columns the
        model left out on purpose). ``list_form``: what a list instance holds, said in
        errors, e.g. "a 16x16 grayscale image, row by row"; None for a table."""
        self.features = tuple(features)
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        if sorted(self.features) != sorted(self.numeric + self.categorical):
            raise ValueError("schema features must be the numeric plus the categorical ones")
        self._feature_set = frozenset(self.features)
        self.ignored = tuple(c for c in dict.fromkeys(ignored) if c not in self._feature_set)
        self._ignored_set = frozenset(self.ignored)
        self.list_form = list_form
        position = {f: i for i, f in enumerate(self.features)}
        self._num_pos = [position[f] for f in self.numeric]
        self._cat_pos = [position[f] for f in self.categorical]
        self._by_name = _getter(self.features)
        # Plain numbers in schema order can go straight into the matrix.
        self._numbers_only = list(self.numeric) == list(self.features)
        self._num_of = None if self._numbers_only else _getter_pos(self._num_pos)
        self._cat_of = _getter_pos(self._cat_pos)
        self._cat_index = [{c: i for i, c in enumerate(cats)} for cats in categories]

    def decode(self, body: bytes | bytearray, max_instances: int) -> Rows:
        if len(body) > WHOLE_BODY_BYTES:
            return self._decode_large(body, max_instances)
        instances = parse_body(body, max_instances)
        if self._numbers_only and body.translate(None, _NUMBER_BYTES) == _NUMBERS_ONLY_SKELETON:
            fast = self._numbers_matrix(instances)
            if fast is not None:
                return Rows(fast, np.zeros((fast.shape[0], 0), np.int32))
        return self.encode(instances)

    def _numbers_matrix(self, instances: list[Any]) -> np.ndarray | None:
        """One conversion for a body known to hold plain numbers; None if its shape or
        values are wrong, and the per-row path then names the offending instance."""
        try:
            matrix = np.array(instances, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            return None
        if matrix.shape != (len(instances), len(self.features)):
            return None
        if not np.isfinite(matrix).all():
            return None
        return matrix

    def _decode_large(self, body: bytes | bytearray, max_instances: int) -> Rows:
        """decode() for a large body: parsed a run of instances at a time (jsonscan)."""
        _check_not_blank(body)
        boxes = jsonscan.scan(body, 2 * max_instances + SPARE_CONTAINERS)
        top = jsonscan.top_level(body, boxes)
        if top is None:
            raise _no_instances_list()
        skeleton, lists = top
        array = lists[int(_instances_of(_parse(skeleton.text, body, skeleton.to_body))[0])]
        n = len(boxes.children(array))
        if n > max_instances:
            _check_count(n, max_instances)
        numeric = np.empty((n, len(self.numeric)), np.float64)
        codes = np.empty((n, len(self.categorical)), np.int32)
        done = 0
        for piece in jsonscan.pieces(body, boxes, array, CHUNK_BYTES):
            if not piece.count:
                raise self._stray(body, piece, done)
            if piece.box is None:
                rows = self._run(body, piece.lo, piece.hi, done)
            else:
                rows = self._one_large(body, boxes, piece.box, done)
            numeric[done : done + len(rows)] = rows.numeric
            codes[done : done + len(rows)] = rows.codes
            done += len(rows)
        _check_count(n, max_instances)
        return Rows(numeric, codes)

    def _run(self, body: bytes | bytearray, lo: int, hi: int, start: int) -> Rows:
        """The instances in body[lo:hi] (whole ones, comma-separated), from index ``start``."""
        text = b"[" + body[lo:hi] + b"]"
        instances = _parse(text, body, lambda offset: lo - 1 + offset)
        if self._numbers_only and not text.translate(None, _NUMBER_BYTES):
            fast = self._numbers_matrix(instances)
            if fast is not None:
                return Rows(fast, np.zeros((fast.shape[0], 0), np.int32))
        return self.encode(instances, start)

    def _one_large(
        self, body: bytes | bytearray, boxes: jsonscan.Containers, box: int, index: int
    ) -> Rows:
        """Instance ``index``, larger than a run: its members are counted before it is
        parsed, so that one huge instance is refused without building it."""
        emptied = jsonscan.emptied(body, boxes, box)  # nested values only need their kind
        members = jsonscan.count_members(emptied.text)
        if boxes.is_list[box]:
            if members != len(self.features):
                raise self._count_error(index, members)
        elif members > len(self.features) + len(self.ignored):
            raise self._too_many_keys(body, emptied, index, members)
        return self.encode([_parse(emptied.text, body, emptied.to_body)], index)

    def _too_many_keys(
        self, body: bytes | bytearray, emptied: jsonscan.Patched, i: int, members: int
    ) -> BadRequest:
        for raw in jsonscan.object_keys(emptied.text):
            key = _parse(raw, body, lambda offset: emptied.to_body(0))
            if key not in self._feature_set and key not in self._ignored_set:
                return self._key_error(i, {key: None})
        return BadRequest(
            400,
            f"instance {i}: {members} members, more than the {len(self.features)} features "
            f"and {len(self.ignored)} ignored columns the model knows (a key repeated?)",
            index=i,
        )

    def _stray(self, body: bytes | bytearray, piece: jsonscan.Piece, i: int) -> BadRequest:
        """The error for instance ``i``: a value in the instances list that is no list or
        object, at piece.lo (after a comma when piece.after_comma)."""
        text = _parse_text(body, piece.lo, piece.hi)
        at = _skip_blank(text, 0)
        try:
            if piece.after_comma:
                if not text.startswith(",", at):
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
                at = _skip_blank(text, at + 1)
            value, _ = fastjson.DECODER.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            offset = piece.lo + len(text[: exc.pos].encode("utf-8", "surrogatepass"))
            return BadRequest(
                400,
                f"request body is not valid JSON ({exc.msg} at {jsonscan.location(body, offset)})",
                field="body",
            )
        return self._shape_error(i, value)

    def _shape_error(self, i: int, inst: Any) -> BadRequest:
        return BadRequest(
            400,
            f"instance {i}: must be an object keyed by feature name or a list of "
            f"{len(self.features)} values in schema order{self._as_list()}, got {_kind(inst)}",
            index=i,
        )

    def encode(self, instances: list[Any], start: int = 0) -> Rows:
        """Rows for parsed instances; errors name them from index ``start``."""
        n, d = len(instances), len(self.features)
        numeric_rows: list[Sequence[Any]] = []
        cat_rows: list[Sequence[Any]] = []
        for i, inst in enumerate(instances, start):
            kind = type(inst)
            if kind is dict:
                # Exactly the features is the common case: one set comparison, nothing more.
                if inst.keys() != self._feature_set and not self._features_and_ignored(inst):
                    raise self._key_error(i, inst)
                values = self._by_name(inst)
            elif kind is list:
                if len(inst) != d:
                    raise self._count_error(i, len(inst))
                values = inst
            else:
                raise self._shape_error(i, inst)
            nums = values if self._num_of is None else self._num_of(values)
            if not _NUMERIC_TYPES.issuperset(map(type, nums)):
                raise self._numeric_error(i, nums)
            numeric_rows.append(nums)
            if self._cat_pos:
                cat_rows.append(self._cat_of(values))
        try:
            numeric = np.array(numeric_rows, dtype=np.float64).reshape(n, len(self.numeric))
        except OverflowError:
            numeric = self._locate_overflow(numeric_rows, start)
        if np.isinf(numeric).any():
            i, j = np.argwhere(np.isinf(numeric))[0]
            raise self._range_error(start + int(i), int(j))
        codes = self._codes(cat_rows, n, start)
        return Rows(numeric, codes)

    def _features_and_ignored(self, inst: dict[str, Any]) -> bool:
        """Every feature and, besides them, only columns the model left out on purpose."""
        return bool(self._ignored_set) and inst.keys() - self._ignored_set == self._feature_set

    def _as_list(self) -> str:
        return f" ({self.list_form})" if self.list_form else ""

    def _codes(self, cat_rows: list[Sequence[Any]], n: int, start: int = 0) -> np.ndarray:
        codes = np.empty((n, len(self.categorical)), np.int32)
        for j, (name, index) in enumerate(zip(self.categorical, self._cat_index, strict=True)):
            column = codes[:, j]
            for k, row in enumerate(cat_rows):
                v = row[j]
                if type(v) is str:
                    column[k] = index.get(v, UNSEEN)
                elif v is None:
                    column[k] = MISSING
                else:
                    i = start + k
                    raise BadRequest(
                        400,
                        f"instance {i}, field {name!r}: expected a category string or null, "
                        f"got {_kind(v)}",
                        index=i,
                        field=name,
                    )
        return codes

    # --- errors: found on the slow path, each names the instance and the field ---

    def _key_error(self, i: int, inst: dict[str, Any]) -> BadRequest:
        unknown = [k for k in inst if k not in self._feature_set and k not in self._ignored_set]
        if unknown:
            return BadRequest(
                400,
                f"instance {i}, field {unknown[0]!r}: unknown feature; the model expects "
                f"{len(self.features)} features as in its schema{self._ignored_note()}",
                index=i,
                field=str(unknown[0]),
            )
        missing = [f for f in self.features if f not in inst]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return BadRequest(
            400,
            f"instance {i}, field {missing[0]!r}: missing feature{more}; send every feature, "
            "null for a missing value",
            index=i,
            field=missing[0],
        )

    def _ignored_note(self) -> str:
        if not self.ignored:
            return ""
        shown = ", ".join(self.ignored[:3])
        more = f" and {len(self.ignored) - 3} more" if len(self.ignored) > 3 else ""
        return f" (and ignores {shown}{more}, left out in training)"

    def _count_error(self, i: int, got: int) -> BadRequest:
        d = len(self.features)
        field = self.features[got] if got < d else f"[{d}]"
        if self.list_form:
            return BadRequest(
                400,
                f"instance {i}: expected {d} values in schema order ({self.list_form}), got {got}",
                index=i,
                field=field,
            )
        return BadRequest(
            400,
            f"instance {i}, field {field!r}: expected {d} values in schema order, got {got}",
            index=i,
            field=field,
        )

    def _numeric_error(self, i: int, nums: Sequence[Any]) -> BadRequest:
        for name, v in zip(self.numeric, nums, strict=True):
            if type(v) not in _NUMERIC_TYPES:
                what = (
                    f"{v.text} is not a JSON number"
                    if isinstance(v, NonFinite)
                    else f"expected a number or null, got {_kind(v)}"
                )
                return BadRequest(400, f"instance {i}, field {name!r}: {what}", index=i, field=name)
        raise AssertionError("no bad value found")  # pragma: no cover

    def _locate_overflow(self, numeric_rows: list[Sequence[Any]], start: int) -> np.ndarray:
        for i, row in enumerate(numeric_rows, start):
            for j, v in enumerate(row):
                try:
                    float(v) if v is not None else None
                except OverflowError:
                    raise self._range_error(i, j) from None
        raise AssertionError("no overflowing value found")  # pragma: no cover

    def _range_error(self, i: int, j: int) -> BadRequest:
        name = self.numeric[j]
        return BadRequest(
            400,
            f"instance {i}, field {name!r}: number out of range (not a finite float)",
            index=i,
            field=name,
        )


_NUMERIC_TYPES = frozenset({int, float, type(None)})


_BLANK_TEXT = re.compile(r"[ \t\n\r]*")


def _skip_blank(text: str, at: int) -> int:
    match = _BLANK_TEXT.match(text, at)
    return match.end() if match else at


def _parse_text(body: bytes | bytearray, lo: int, hi: int) -> str:
    try:
        return body[lo:hi].decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "request body is not UTF-8 text", field="body") from None


def _getter(keys: Sequence[str]) -> Any:
    get = itemgetter(*keys)
    return (lambda obj: (get(obj),)) if len(keys) == 1 else get


def _getter_pos(positions: Sequence[int]) -> Any:
    if not positions:
        return lambda values: ()
    get = itemgetter(*positions)
    return (lambda values: (get(values),)) if len(positions) == 1 else get


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, NonFinite):
        return value.text
    return type(value).__name__
