"""Large bodies are parsed a run of instances at a time (jsonscan): they get the answers a
small body gets, refuse what would take too much memory before parsing it, and a 10 MiB
body costs about its own size to decode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.serving import instances as instances_module
from components.serving import jsonscan
from components.serving.errors import BadRequest
from components.serving.instances import InstanceDecoder

NUMERIC = [f"p{i}" for i in range(8)]
ROW = b"[1,2,3,4,5,6,7,8]"
MIB = 1 << 20


@pytest.fixture()
def numbers() -> InstanceDecoder:
    return InstanceDecoder(NUMERIC, NUMERIC, [], [])


@pytest.fixture()
def mixed() -> InstanceDecoder:
    return InstanceDecoder(["a", "b", "c"], ["a", "b"], ["c"], [["x", "y"]], ignored=["id"])


def decode(decoder: InstanceDecoder, body: bytes, large: bool, chunk: int = 40):
    """Rows as lists, or the error as (status, index, field, message)."""
    saved = instances_module.WHOLE_BODY_BYTES, instances_module.CHUNK_BYTES
    instances_module.WHOLE_BODY_BYTES = -1 if large else 1 << 40
    instances_module.CHUNK_BYTES = chunk
    try:
        rows = decoder.decode(body, 50)
        return np.nan_to_num(rows.numeric, nan=-999.0).tolist(), rows.codes.tolist()
    except BadRequest as exc:
        return exc.status, exc.index, exc.field, exc.message
    finally:
        instances_module.WHOLE_BODY_BYTES, instances_module.CHUNK_BYTES = saved


SAME = [
    b'{"instances": [' + b",".join([ROW] * 7) + b"]}",
    b'{"instances": [[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,null]], "parameters": {"a": [1]}}',
    b'{"parameters": {"a": [1]}, "instances": [{"p0":1,"p1":2,"p2":3,"p3":4,"p4":5,"p5":6,'
    b'"p6":7,"p7":8}]}',
    b'{"instances": [[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7]]}',
    b'{"instances": [[1,2,3,4,5,6,7,8], 7]}',
    b'{"instances": [7, [1,2,3,4,5,6,7,8]]}',
    b'{"instances": [[1,2,3,4,5,6,7,8], "x", [1,2,3,4,5,6,7,8]]}',
    b'{"instances": [[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,[8]]]}',
    b'{"instances": [[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,NaN]]}',
    b'{"instances": [[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,-Infinity]]}',
    b'{"instances": [[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,' + b"1" * 5000 + b"]]}",
    b'{"instances": [[1,2,3,4,5,6,7,1e999]]}',
    b'{"instances": [{"p0":1,"p1":2,"p2":3,"p3":4,"p4":5,"p5":6,"p6":7,"p9":8}]}',
    b'{"instances": [[1,2,3,4,5,6,7,8],,[1,2,3,4,5,6,7,8]]}',
    b'{"instances": [[1,2,3,4,5,6,7,8] [1,2,3,4,5,6,7,8]]}',
    b'{"instances": [[1,2,3,4,5,6,7,8],]}',
    b'{"instances": [["a\\"]", 2,3,4,5,6,7,8]]}',
    b'{"instances": [[1,2,3,4,5,6,7,"\xff"]]}',
    b'{"instances": [[' + b",".join([b"1"] * 300) + b"]]}",
    b'{"instances": [' + b",".join([ROW] * 51) + b"]}",
    b'{"instances": []}',
    b'{"instances": {}}',
    b'{"instances": "abc"}',
    b'{"rows": [1]}',
    b"[[1, 2]]",
    b"   ",
    b'{"instances": [[1,2,3,4,5,6,7,8]], "model": 1}',
    b'{"instances": [[1,2,3,4,5,6,7,8]]} x',
    b"[" * 150 + b"]" * 150,
    b"[" * 1100 + b"]" * 1100,
]
MIXED_SAME = [
    b'{"instances": [{"a":1,"b":null,"c":"x"},{"a":1,"b":2,"c":"z","id":[1,{"k":[2]}]}]}',
    b'{"instances": [[1,2,"x"],[1,2,null],[3,4,"q]{"]]}',
    b'{"instances": [{"a":1,"b":2,"c":"x",' + b",".join(b'"k%d":1' % i for i in range(40)) + b"}]}",
    b'{"instances": [{"a":1,"b":2,"c":"x"},{"a":1,"b":2,"c":{}}]}',
]


@pytest.mark.parametrize("body", SAME, ids=range(len(SAME)))
@pytest.mark.parametrize("chunk", [8, 40, 1 << 20])
def test_a_large_body_gets_the_answer_of_a_small_one(numbers, body, chunk):
    assert decode(numbers, body, large=True, chunk=chunk) == decode(numbers, body, large=False)


@pytest.mark.parametrize("body", MIXED_SAME, ids=range(len(MIXED_SAME)))
@pytest.mark.parametrize("chunk", [8, 40, 1 << 20])
def test_a_large_body_gets_the_answer_of_a_small_one_mixed(mixed, body, chunk):
    assert decode(mixed, body, large=True, chunk=chunk) == decode(mixed, body, large=False)


def test_unbalanced_brackets_are_invalid_json_either_way(numbers):
    for body in (b'{"instances": [[1,2,3,4,5,6,7,8]]', b'{"instances": [[1,2,3,4,5,6,7,8]]]}'):
        small, large = decode(numbers, body, False), decode(numbers, body, True)
        assert small[:3] == large[:3] == (400, None, "body")
        assert "not valid JSON" in small[3] and "not valid JSON" in large[3]


def test_a_huge_instance_is_counted_before_it_is_parsed(numbers):
    body = b'{"instances": [' + ROW + b",[" + b",".join([b"0"] * 200_000) + b"]]}"
    assert decode(numbers, body, True, chunk=1000) == decode(numbers, body, False)
    assert decode(numbers, body, True, chunk=1000)[3] == (
        "instance 1, field '[8]': expected 8 values in schema order, got 200000"
    )


def test_a_huge_object_instance_is_refused_at_its_first_unknown_key(numbers):
    keys = ",".join(f'"k{i}": {i}' for i in range(50_000)).encode()
    body = b'{"instances": [{"p0": 1, ' + keys + b"}]}"
    error = decode(numbers, body, True, chunk=1000)
    assert error == decode(numbers, body, False)
    assert error[:3] == (400, 0, "k0")


def test_lists_in_strings_and_escaped_quotes_are_not_containers():
    body = b'{"instances": [["[", "\\"]{", "\\\\"], {"k\\"[": "]"}]}'
    boxes = jsonscan.scan(body, 100)
    assert [body[s : e + 1] for s, e in zip(boxes.start, boxes.end, strict=True)] == [
        body,
        body[14:-1],
        b'["[", "\\"]{", "\\\\"]',
        b'{"k\\"[": "]"}',
    ]
    assert boxes.level.tolist() == [1, 2, 3, 3]
    assert boxes.children(1) == [2, 3]


def test_too_many_lists_are_refused_before_parsing():
    body = b'{"instances": [' + b",".join([b"[0]"] * 1000) + b"]}"
    with pytest.raises(BadRequest) as info:
        jsonscan.scan(body, 500)
    assert info.value.status == 413 and info.value.field == "instances"


def test_nesting_is_refused_past_max_depth():
    with pytest.raises(BadRequest, match="nested too deeply"):
        jsonscan.scan(b"[" * (jsonscan.MAX_DEPTH + 1) + b"]" * (jsonscan.MAX_DEPTH + 1), 10**6)
    jsonscan.scan(b"[" * jsonscan.MAX_DEPTH + b"]" * jsonscan.MAX_DEPTH, 10**6)


def test_runs_hold_whole_instances_and_big_ones_stand_alone():
    rows = [b"[" + b",".join([b"1"] * n) + b"]" for n in (3, 3, 50, 3, 3, 3)]
    body = b'{"instances": [' + b", ".join(rows) + b"]}"
    boxes = jsonscan.scan(body, 100)
    pieces = list(jsonscan.pieces(body, boxes, 1, 20))
    assert [(p.count, p.box is not None) for p in pieces] == [(2, False), (1, True), (3, False)]
    texts = [json.loads(b"[" + body[p.lo : p.hi] + b"]") for p in pieces]
    assert [len(t) for t in texts] == [2, 1, 3]


def _hwm_growth(run) -> float:
    """Peak RSS growth (bytes) of this process while ``run()`` runs (Linux only)."""
    status = Path("/proc/self/status")

    def field(name: str) -> int:
        line = next(t for t in status.read_text().splitlines() if t.startswith(name))
        return int(line.split()[1]) * 1024

    base = field("VmRSS:")
    Path("/proc/self/clear_refs").write_text("5")
    run()
    return field("VmHWM:") - base


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_decoding_a_10_mib_body_costs_about_its_size():
    rng = np.random.default_rng(0)
    names = [f"p{i}" for i in range(64)]
    decoder = InstanceDecoder(names, names, [], [])
    rows = (rng.random((8800, 64)) * 16).tolist()
    floats = json.dumps({"instances": rows}).encode()[: 10 * MIB]
    floats = floats[: floats.rindex(b"]") + 1] + b"]}"  # whole rows, under 10 MiB
    lists = b'{"instances":[' + b",".join([b"[0]"] * (10 * MIB // 4 - 4)) + b"]}"
    got = {}
    growth = _hwm_growth(lambda: got.setdefault("rows", decoder.decode(floats, 10_000)))
    assert len(got["rows"]) > 8000
    assert growth < 1.5 * len(floats), growth / MIB  # whole-body parsing: ~4x
    with pytest.raises(BadRequest) as info:
        growth = _hwm_growth(lambda: decoder.decode(lists, 10_000))
    assert info.value.status == 413
    assert growth < 0.5 * len(lists), growth / MIB  # whole-body parsing: ~30x
