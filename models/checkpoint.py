"""The ``.ckpt`` format: one self-describing file, no pickle, readable without running model code.

Layout (all integers little-endian)::

    8 bytes   magic  b"FQRNNCKP"
    4 bytes   uint32 schema version (SCHEMA_VERSION)
    8 bytes   uint64 header length n
    n bytes   UTF-8 JSON header {"graph": ..., "metadata": ..., "arrays": [...]}
    rest      raw array bytes, concatenated in array-table order

Each array-table entry is ``{"name", "dtype": "<f4", "shape", "offset", "nbytes", "sha256"}`` with
offsets relative to the start of the array bytes, contiguous and covering them exactly. Writing is
deterministic (sorted JSON keys, arrays sorted by name) and atomic (temp file + os.replace), so the
same model always gives the same bytes. Loading validates everything and raises a named
``CheckpointError`` subclass; it never executes anything from the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass

import numpy as np

from models.errors import (  # noqa: F401  (re-exported: the public error names live here too)
    BadMagic,
    CheckpointError,
    ConstraintViolation,
    CorruptCheckpoint,
    ExtraArray,
    InvalidGraph,
    MissingArray,
    NonFiniteArray,
    ShapeMismatch,
    UnknownLayerType,
    UnsupportedSchema,
)
from models.layers import NON_NEGATIVE
from models.network import expected_shapes, validate_graph

MAGIC = b"FQRNNCKP"
SCHEMA_VERSION = 1
_PREFIX = struct.Struct("<8sIQ")
MAX_HEADER_BYTES = 16 << 20
MAX_FILE_BYTES = 256 << 20
DTYPE = "<f4"
_ENTRY_KEYS = {"name", "dtype", "shape", "offset", "nbytes", "sha256"}


@dataclass(frozen=True)
class Checkpoint:
    """A model: architecture graph (plain dict), arrays (name -> float32 array), metadata (dict)."""

    graph: dict
    arrays: dict
    metadata: dict


def _reject_constant(token):
    raise ValueError(f"non-standard JSON constant {token}")


def _canonical_json(obj) -> bytes:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"graph/metadata must be plain finite JSON data: {exc}") from exc


def encode(ckpt: Checkpoint) -> bytes:
    """Serialise a checkpoint to bytes (validated first, so a bad model is never written)."""
    validate(ckpt.graph, ckpt.arrays)
    table, blobs, offset = [], [], 0
    for name in sorted(ckpt.arrays):
        arr = np.ascontiguousarray(np.asarray(ckpt.arrays[name], dtype=DTYPE))
        raw = arr.tobytes()
        table.append({"name": name, "dtype": DTYPE, "shape": list(arr.shape), "offset": offset,
                      "nbytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()})
        blobs.append(raw)
        offset += len(raw)
    header = _canonical_json({"graph": ckpt.graph, "metadata": ckpt.metadata, "arrays": table})
    return _PREFIX.pack(MAGIC, SCHEMA_VERSION, len(header)) + header + b"".join(blobs)


def save_checkpoint(path, ckpt: Checkpoint) -> None:
    """Write atomically: a reader never sees a half-written file."""
    data = encode(ckpt)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", dir=directory)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path) -> Checkpoint:
    """Read and fully validate a checkpoint file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {os.fspath(path)!r}: {exc.strerror}; "
                              "check the path") from exc
    if len(data) > MAX_FILE_BYTES:
        raise CorruptCheckpoint(f"file is larger than {MAX_FILE_BYTES} bytes; not a zoo checkpoint")
    return decode(data)


def _parse_header(data: bytes) -> dict:
    if len(data) < _PREFIX.size or data[:8] != MAGIC:
        raise BadMagic(f"not a checkpoint: expected the magic bytes {MAGIC!r} at the start; "
                       "pass a .ckpt file written by models.checkpoint.save_checkpoint")
    _, version, n = _PREFIX.unpack_from(data)
    if version != SCHEMA_VERSION:
        raise UnsupportedSchema(f"schema version {version} is not supported (this package reads "
                                f"version {SCHEMA_VERSION}); use a matching package version")
    if n > MAX_HEADER_BYTES or _PREFIX.size + n > len(data):
        raise CorruptCheckpoint(f"header length {n} exceeds the file; the file is truncated")
    try:
        header = json.loads(data[_PREFIX.size:_PREFIX.size + n].decode("utf-8"),
                            parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptCheckpoint(f"header is not valid UTF-8 JSON ({exc}); the file is damaged, "
                                "re-download or re-export it") from None
    if not isinstance(header, dict) or set(header) != {"graph", "metadata", "arrays"}:
        raise CorruptCheckpoint("header must hold exactly 'graph', 'metadata' and 'arrays'")
    if not isinstance(header["metadata"], dict):
        raise CorruptCheckpoint("header 'metadata' must be an object")
    return header


def _check_table(table, payload_len: int) -> list:
    if not isinstance(table, list):
        raise CorruptCheckpoint("header 'arrays' must be a list of array entries")
    offset, seen = 0, set()
    for e in table:
        if not isinstance(e, dict) or set(e) != _ENTRY_KEYS:
            raise CorruptCheckpoint(f"array entry must have exactly the keys {sorted(_ENTRY_KEYS)}")
        name, shape = e["name"], e["shape"]
        if not isinstance(name, str) or name in seen:
            raise CorruptCheckpoint(f"array name {name!r} is not a string or is duplicated")
        seen.add(name)
        if e["dtype"] != DTYPE:
            raise CorruptCheckpoint(f"array {name!r} has dtype {e['dtype']!r}; only {DTYPE!r}")
        if not (isinstance(shape, list) and len(shape) <= 8 and all(
                isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= 1 << 30 for s in shape)):
            raise CorruptCheckpoint(f"array {name!r} has an invalid shape {shape!r}")
        nbytes = 4 * math.prod(shape)
        if e["nbytes"] != nbytes or e["offset"] != offset or isinstance(e["offset"], bool):
            raise CorruptCheckpoint(f"array {name!r}: offset/nbytes disagree with the table layout")
        if not isinstance(e["sha256"], str):
            raise CorruptCheckpoint(f"array {name!r}: sha256 must be a hex string")
        offset += nbytes
    if offset != payload_len:
        raise CorruptCheckpoint(f"array data is {payload_len} bytes but the table describes "
                                f"{offset}; the file is truncated or has trailing bytes")
    return table


def decode(data: bytes) -> Checkpoint:
    """Parse and validate checkpoint bytes."""
    header = _parse_header(data)
    graph = header["graph"]
    validate_graph(graph)
    n = _PREFIX.unpack_from(data)[2]
    payload = memoryview(data)[_PREFIX.size + n:]
    table = _check_table(header["arrays"], len(payload))
    arrays = {}
    for e in table:
        raw = bytes(payload[e["offset"]:e["offset"] + e["nbytes"]])
        if hashlib.sha256(raw).hexdigest() != e["sha256"]:
            raise CorruptCheckpoint(f"array {e['name']!r} fails its sha256 check; the file is "
                                    "damaged, re-download or re-export it")
        arr = np.frombuffer(raw, dtype=DTYPE).reshape(e["shape"]).astype(np.float32)
        arr.flags.writeable = False
        arrays[e["name"]] = arr
    validate(graph, arrays)
    return Checkpoint(graph=graph, arrays=arrays, metadata=header["metadata"])


def validate(graph, arrays) -> None:
    """Check that arrays match the graph exactly: names, shapes, finiteness, physical ranges."""
    validate_graph(graph)
    want = expected_shapes(graph)
    missing = sorted(set(want) - set(arrays))
    if missing:
        raise MissingArray(f"arrays {missing} are required by the graph but absent; "
                           "re-export the model with all its parameters")
    extra = sorted(set(arrays) - set(want))
    if extra:
        raise ExtraArray(f"arrays {extra} are not used by any layer of the graph; "
                         "remove them or fix the layer names")
    for name, shape in want.items():
        arr = np.asarray(arrays[name])
        if tuple(arr.shape) != shape:
            raise ShapeMismatch(f"array {name!r} has shape {tuple(arr.shape)} but the graph "
                                f"implies {shape}; the graph and the arrays do not belong together")
        if not np.all(np.isfinite(arr)):
            raise NonFiniteArray(f"array {name!r} contains NaN or Inf; the model diverged, "
                                 "retrain it or restore an earlier checkpoint")
    for layer in graph["layers"]:
        for param in NON_NEGATIVE.get(layer["type"], ()):
            key = f"{layer['name']}.{param}"
            if np.any(np.asarray(arrays[key]) < 0):
                raise ConstraintViolation(f"{key} has negative entries but is a bias current; "
                                          "clip it at 0 (training projects it automatically)")
