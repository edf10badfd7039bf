"""Where the parts of a large request body are, found on its raw bytes, so that it can be
parsed a chunk of instances at a time.

Parsing a JSON text whole builds all its Python objects at once: 3-4 bytes of memory per
byte for long floats, up to 30 for a list of ``[0]`` (a 10 MiB body then takes 300 MB). The
decoder therefore parses only small bodies whole. For a larger one, :func:`scan` first finds
every list and object outside strings with numpy, a window of the body at a time; then the
top level is parsed with the lists among its members emptied (:func:`top_level`), and the
instances array a run of whole instances at a time (:func:`pieces`). The scan keeps one
entry per list or object, and a body holding more than a request can use is refused before
anything is parsed, so a request's memory stays a small multiple of its body.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from components.serving.errors import BadRequest

WINDOW = 1 << 18  # bytes per numpy step of the scan, which bounds the scan's own memory
MAX_DEPTH = 1024  # lists and objects nested deeper are refused (as orjson refuses them)
MAX_OUTSIDE_VALUES = 4096  # values allowed outside the member lists of the top-level object

_LIST, _OBJECT, _QUOTE = 1, 2, 5  # codes of "[", "{" and '"'; "]" and "}" are 3 and 4
_TABLE = bytes({0x5B: 1, 0x7B: 2, 0x5D: 3, 0x7D: 4, 0x22: _QUOTE}.get(b, 0) for b in range(256))
_ESCAPE = re.compile(rb"\\.", re.S)  # inside a string, \" is not its end
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_WS = re.compile(rb"[ \t\n\r]*")
_COMMA = re.compile(rb"[ \t\n\r]*,[ \t\n\r]*")

Buffer = bytes | bytearray


@dataclass(frozen=True)
class Containers:
    """Every list and object of a body (outside strings), in the order they open."""

    start: np.ndarray  # position of the opening bracket
    end: np.ndarray  # position of the matching closing bracket
    level: np.ndarray  # 1 for a top-level value, 2 for what it holds, ...
    is_list: np.ndarray  # True for a list, False for an object

    def __len__(self) -> int:
        return int(self.start.size)

    def children(self, i: int) -> list[int]:
        """The containers directly inside container ``i``, in order."""
        hi = int(np.searchsorted(self.start, self.end[i]))
        level = self.level[i + 1 : hi]
        return (np.flatnonzero(level == self.level[i] + 1) + i + 1).tolist()


def scan(body: Buffer, max_containers: int) -> Containers:
    """The lists and objects of ``body``; BadRequest when it holds more than
    ``max_containers`` (413), or when its brackets or quotes do not pair up (400)."""
    text = _ESCAPE.sub(b"__", body) if b"\\" in body else body
    found: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    in_string = 0  # 1 when the window starts inside a string
    count = depth = 0
    for lo in range(0, len(text), WINDOW):
        window = np.frombuffer(text[lo : lo + WINDOW].translate(_TABLE), np.uint8)
        at = _nonzero(window)
        code = window[at]
        quote = code == _QUOTE
        # a bracket is outside strings when an even number of quotes come before it
        keep = ~quote & (((np.cumsum(quote) + in_string) & 1) == 0)
        in_string = (in_string + int(np.count_nonzero(quote))) & 1
        depths = depth + np.cumsum(np.where(code[keep] <= _OBJECT, 1, -1))
        if depths.size and depths.max() > MAX_DEPTH:
            raise BadRequest(400, "request body is nested too deeply", field="body")
        depth = int(depths[-1]) if depths.size else depth
        count += int(np.count_nonzero(keep))
        if count > 2 * max_containers:
            raise BadRequest(
                413,
                f"request body holds more than {max_containers} lists and objects; a request "
                "takes one list or object per instance: send fewer instances",
                field="instances",
            )
        found.append(at[keep] + lo)
        codes.append(code[keep])
    if in_string:
        raise _invalid(body, "a string is never closed", len(body))
    pos = np.concatenate(found) if found else np.zeros(0, np.int64)
    code = np.concatenate(codes) if codes else np.zeros(0, np.uint8)
    opens = code <= _OBJECT
    after = np.cumsum(np.where(opens, 1, -1))  # the depth after each bracket
    if after.size and after.min() < 0:
        raise _invalid(body, "a bracket closes nothing", int(pos[np.argmax(after < 0)]))
    if depth:
        raise _invalid(body, "a list or object is never closed", len(body))
    level = np.where(opens, after, after + 1)
    # Within one level, each opening bracket is followed by its closing one.
    order = np.argsort(level, kind="stable")
    first, last = order[0::2], order[1::2]
    if (code[last] != code[first] + 2).any():
        wrong = int(pos[last[np.argmax(code[last] != code[first] + 2)]])
        raise _invalid(body, "a list closed by '}' or an object by ']'", wrong)
    by_start = np.argsort(pos[first])
    return Containers(
        start=pos[first][by_start],
        end=pos[last][by_start],
        level=level[first][by_start],
        is_list=code[first][by_start] == _LIST,
    )


def _nonzero(window: np.ndarray) -> np.ndarray:
    """Positions of the nonzero bytes of ``window``, looked for 8 bytes at a time (they are
    few in a body of numbers: np.flatnonzero on the bytes would take 4x as long)."""
    padded = window
    if window.size % 8:
        padded = np.concatenate([window, np.zeros(-window.size % 8, np.uint8)])
    words = np.flatnonzero(padded.view(np.uint64) != 0)
    at = (words[:, None] * 8 + np.arange(8)).ravel()
    return at[padded[at] != 0]


@dataclass(frozen=True)
class Patched:
    """A text made of pieces of a body, with fillers between; ``to_body`` maps an offset in
    it back to the body (for error messages)."""

    text: bytes
    starts: tuple[int, ...]  # where each piece starts in text
    origins: tuple[int, ...]  # where it came from in the body

    def to_body(self, offset: int) -> int:
        k = bisect_right(self.starts, offset) - 1
        return self.origins[k] + offset - self.starts[k]


def patch(body: Buffer, lo: int, hi: int, cuts: list[tuple[int, int, bytes]]) -> Patched:
    """body[lo:hi] with each body[a:b] of ``cuts`` (in order) replaced by its filler."""
    parts: list[Buffer] = []
    starts: list[int] = []
    origins: list[int] = []
    size = 0
    for a, b, filler in [*cuts, (hi, hi, b"")]:
        for piece, origin in ((body[lo:a], lo), (filler, a)):
            parts.append(piece)
            starts.append(size)
            origins.append(origin)
            size += len(piece)
        lo = b
    return Patched(b"".join(parts), tuple(starts), tuple(origins))


def top_level(body: Buffer, boxes: Containers) -> tuple[Patched, list[int]] | None:
    """The body with each list among the members of its top-level object replaced by
    ``[k]``, where k indexes the returned containers (the parsed ``"instances"`` then says
    which list it is); None when the body is no JSON object."""
    if not len(boxes) or boxes.is_list[0] or int(boxes.start[0]) != skip_blank(body, 0):
        return None
    lists = [c for c in boxes.children(0) if boxes.is_list[c]]
    cuts = [(int(boxes.start[c]) + 1, int(boxes.end[c]), b"%d" % k) for k, c in enumerate(lists)]
    patched = patch(body, 0, len(body), cuts)
    if patched.text.count(b",") + patched.text.count(b":") > MAX_OUTSIDE_VALUES:
        raise BadRequest(
            400,
            f"request body holds more than {MAX_OUTSIDE_VALUES} values besides its lists; "
            'send {"instances": [...]} (and "parameters")',
            field="body",
        )
    return patched, lists


@dataclass(frozen=True)
class Piece:
    """A run of the instances array: ``count`` whole instances in body[lo:hi] (and whatever
    lies between them: parsing the run finds it), or the one instance that is container
    ``box``; with count 0, a value that is no list or object, starting at lo (after a comma
    when ``after_comma``)."""

    lo: int
    hi: int
    count: int
    box: int | None = None
    after_comma: bool = False


def pieces(body: Buffer, boxes: Containers, array: int, chunk_bytes: int) -> Iterator[Piece]:
    """The instances of list ``array``: runs of those that start within the same
    ``chunk_bytes`` of the body (so a run is at most twice that long), an instance larger
    than that alone. A value that is no list or object between two runs, or before the first
    or after the last instance, ends it (the decoder reports it)."""
    first, end = int(boxes.start[array]) + 1, int(boxes.end[array])
    kids = np.asarray(boxes.children(array), np.int64)
    if not kids.size:
        if skip_blank(body, first, end) != end:
            yield Piece(first, end, 0)
        return
    lo, hi = boxes.start[kids], boxes.end[kids] + 1
    if skip_blank(body, first, int(lo[0])) != lo[0]:
        yield Piece(first, int(lo[0]), 0)
        return
    big = hi - lo > chunk_bytes
    window = (lo - lo[0]) // chunk_bytes
    cuts = np.flatnonzero(big[1:] | big[:-1] | (window[1:] != window[:-1])) + 1
    bounds = [0, *cuts.tolist(), kids.size]
    for a, b in zip(bounds, bounds[1:], strict=False):
        if a and not _COMMA.fullmatch(body, int(hi[a - 1]), int(lo[a])):
            yield Piece(int(hi[a - 1]), int(lo[a]), 0, after_comma=True)
            return
        if big[a]:
            yield Piece(int(lo[a]), int(hi[a]), 1, box=int(kids[a]))
        else:
            yield Piece(int(lo[a]), int(hi[b - 1]), b - a)
    if skip_blank(body, int(hi[-1]), end) != end:
        yield Piece(int(hi[-1]), end, 0, after_comma=True)


def skip_blank(text: Buffer, at: int, end: int | None = None) -> int:
    """Where the JSON whitespace from ``at`` ends."""
    match = _WS.match(text, at, len(text) if end is None else end)
    return match.end() if match else at


def emptied(body: Buffer, boxes: Containers, box: int) -> Patched:
    """Container ``box`` with every list and object inside it emptied."""
    cuts = [(int(boxes.start[c]) + 1, int(boxes.end[c]), b"") for c in boxes.children(box)]
    return patch(body, int(boxes.start[box]), int(boxes.end[box]) + 1, cuts)


def count_members(text: bytes) -> int:
    """Values of the list (or members of the object) ``text``, whose own lists and objects
    are empty (see :func:`emptied`)."""
    inner = _STRING.sub(b'""', text[1:-1])
    return inner.count(b",") + 1 if inner.strip() else 0


def object_keys(text: bytes) -> Iterator[bytes]:
    """The keys of the object ``text`` (its own lists and objects empty), as JSON strings."""
    for match in _KEY.finditer(text):
        if match.group(2):
            yield match.group(1)


_KEY = re.compile(rb'("[^"\\]*(?:\\.[^"\\]*)*")[ \t\n\r]*(:?)')


def location(body: Buffer, offset: int) -> str:
    """The "line L column C" of a byte offset, counted as the standard library's parser does."""
    line = body.count(b"\n", 0, offset) + 1
    line_start = body.rfind(b"\n", 0, offset) + 1
    column = len(body[line_start:offset].decode("utf-8", "replace")) + 1
    return f"line {line} column {column}"


def _invalid(body: Buffer, what: str, offset: int) -> BadRequest:
    return BadRequest(
        400, f"request body is not valid JSON ({what} at {location(body, offset)})", field="body"
    )
