"""The .ckpt format: exact round trip, deterministic bytes, named errors, robust to corruption."""

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import checkpoint as ck
from models.backbone import build_graph
from models.network import init_arrays


def _ckpt(cell="fq_bmru", **kw):
    graph = build_graph(cell, 8, 4, 2, layers=2, pool=True, **kw)  # digits_rows: 8 inputs, pooled
    meta = {"task": "digits_rows", "metrics": {"test_acc": 0.5}, "seed": 0, "schema_version": 1}
    return ck.Checkpoint(graph, init_arrays(graph, seed=0), meta)


@pytest.fixture(scope="module")
def good_bytes():
    return ck.encode(_ckpt())


def _raw(graph, arrays, metadata=None):
    """Encode without validation, to build deliberately invalid files."""
    table, blobs, off = [], [], 0
    for name in sorted(arrays):
        raw = np.asarray(arrays[name], "<f4").tobytes()
        table.append(
            {
                "name": name,
                "dtype": "<f4",
                "shape": list(np.shape(arrays[name])),
                "offset": off,
                "nbytes": len(raw),
                "sha256": __import__("hashlib").sha256(raw).hexdigest(),
            }
        )
        blobs.append(raw)
        off += len(raw)
    header = json.dumps({"graph": graph, "metadata": metadata or {}, "arrays": table}).encode()
    return struct.pack("<8sIQ", ck.MAGIC, ck.SCHEMA_VERSION, len(header)) + header + b"".join(blobs)


def test_round_trip_is_exact(tmp_path, good_bytes):
    original = _ckpt()
    path = tmp_path / "m.ckpt"
    ck.save_checkpoint(path, original)
    loaded = ck.load_checkpoint(path)
    assert loaded.graph == original.graph and loaded.metadata == original.metadata
    assert set(loaded.arrays) == set(original.arrays)
    for k, v in original.arrays.items():
        np.testing.assert_array_equal(loaded.arrays[k], v)
        assert loaded.arrays[k].dtype == np.float32
    assert ck.encode(loaded) == path.read_bytes() == good_bytes  # deterministic bytes


@pytest.mark.parametrize("cell", ["fq_cmru", "bmru", "cmru", "acmru", "lru", "mingru"])
def test_every_cell_round_trips(cell):
    c = _ckpt(cell)
    back = ck.decode(ck.encode(c))
    assert back.graph == c.graph and sorted(back.arrays) == sorted(c.arrays)


def _expect(exc, data):
    with pytest.raises(exc) as info:
        ck.decode(data)
    assert isinstance(info.value, ck.CheckpointError) and str(info.value)


def test_bad_magic_and_schema(good_bytes):
    _expect(ck.BadMagic, b"PK\x03\x04" + good_bytes[4:])
    _expect(ck.BadMagic, b"")
    _expect(ck.UnsupportedSchema, good_bytes[:8] + struct.pack("<I", 99) + good_bytes[12:])


def test_truncated_trailing_and_checksum(good_bytes):
    _expect(ck.CorruptCheckpoint, good_bytes[:-5])
    _expect(ck.CorruptCheckpoint, good_bytes + b"\0")
    _expect(ck.CorruptCheckpoint, good_bytes[:40])
    flipped = bytearray(good_bytes)
    flipped[-3] ^= 0xFF
    _expect(ck.CorruptCheckpoint, bytes(flipped))


def test_array_errors():
    c = _ckpt()
    arrays = dict(c.arrays)
    missing = {k: v for k, v in arrays.items() if k != "cell1.delta"}
    _expect(ck.MissingArray, _raw(c.graph, missing))
    _expect(ck.ExtraArray, _raw(c.graph, {**arrays, "ghost.W": np.zeros(2)}))
    _expect(ck.ShapeMismatch, _raw(c.graph, {**arrays, "cell1.W": np.zeros((4, 4))}))
    nan = arrays["readout.W"].copy()
    nan[0, 0] = np.nan
    _expect(ck.NonFiniteArray, _raw(c.graph, {**arrays, "readout.W": nan}))
    neg = arrays["cell2.delta"].copy()
    neg[0] = -1
    _expect(ck.ConstraintViolation, _raw(c.graph, {**arrays, "cell2.delta": neg}))


def test_graph_errors():
    c = _ckpt()
    g = json.loads(json.dumps(c.graph))
    g["layers"][1]["type"] = "transformer"
    _expect(ck.UnknownLayerType, _raw(g, c.arrays))
    g = json.loads(json.dumps(c.graph))
    g["edges"].append(["readout", "cell1"])
    _expect(ck.InvalidGraph, _raw(g, c.arrays))
    g = json.loads(json.dumps(c.graph))
    g["layers"][1]["in"] = 5
    _expect(ck.InvalidGraph, _raw(g, c.arrays))


def test_save_refuses_invalid_model(tmp_path):
    c = _ckpt()
    bad = ck.Checkpoint(c.graph, {**c.arrays, "readout.b": np.array([np.inf, 0.0])}, c.metadata)
    with pytest.raises(ck.NonFiniteArray):
        ck.save_checkpoint(tmp_path / "x.ckpt", bad)
    assert not list(tmp_path.iterdir())


def test_missing_file_is_a_named_error(tmp_path):
    with pytest.raises(ck.CheckpointError):
        ck.load_checkpoint(tmp_path / "absent.ckpt")


_FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _only_named_errors(data):
    try:
        ck.decode(data)
    except ck.CheckpointError:
        pass


@_FUZZ
@given(st.data())
def test_fuzz_byte_corruption(good_bytes, data):
    buf = bytearray(good_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    insert = data.draw(st.binary(max_size=16))
    _only_named_errors(bytes(buf[:cut]) + insert + bytes(buf[cut:]))
    _only_named_errors(bytes(buf))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=20,
)


@_FUZZ
@given(st.data())
def test_fuzz_header_values(good_bytes, data):
    """Replace one field anywhere in the JSON header by arbitrary JSON: named errors only."""
    n = struct.unpack_from("<Q", good_bytes, 12)[0]
    header = json.loads(good_bytes[20 : 20 + n])
    node, path = header, []
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        path.append(key)
        node = node[key]
    value = data.draw(_JSON)
    if not path:
        header = value
    else:
        parent = header
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
    raw = json.dumps(header).encode()
    _only_named_errors(struct.pack("<8sIQ", ck.MAGIC, 1, len(raw)) + raw + good_bytes[20 + n :])


def _dumps_repeating(obj, target) -> str:
    """JSON text of obj in which the object `target` (compared by identity) names its first key
    twice: the second time with the value null."""
    if isinstance(obj, dict):
        items = [f"{json.dumps(k)}:{_dumps_repeating(v, target)}" for k, v in obj.items()]
        if obj is target:
            items.append(f"{json.dumps(next(iter(obj)))}:null")
        return "{" + ",".join(items) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(_dumps_repeating(v, target) for v in obj) + "]"
    return json.dumps(obj)


def _objects(node):
    """Every non-empty JSON object in a parsed header, depth first."""
    if isinstance(node, dict):
        if node:
            yield node
        for v in node.values():
            yield from _objects(v)
    elif isinstance(node, list):
        for v in node:
            yield from _objects(v)


@_FUZZ
@given(st.data())
def test_repeated_header_key_is_refused_anywhere(good_bytes, data):
    """A key named twice in any object of the header (which value counts is a guess) is refused."""
    n = struct.unpack_from("<Q", good_bytes, 12)[0]
    header = json.loads(good_bytes[20 : 20 + n])
    target = data.draw(st.sampled_from(list(_objects(header))))
    raw = _dumps_repeating(header, target).encode()
    with pytest.raises(ck.CorruptCheckpoint, match="repeats the key"):
        ck.decode(struct.pack("<8sIQ", ck.MAGIC, 1, len(raw)) + raw + good_bytes[20 + n :])
