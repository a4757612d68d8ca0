"""The ``.ckpt`` format: one self-describing file, no pickle, readable without running model code.

Layout (all integers little-endian)::

    8 bytes   magic  b"FQRNNCKP"
    4 bytes   uint32 schema version (SCHEMA_VERSION)
    8 bytes   uint64 header length n
    n bytes   UTF-8 JSON header {"graph": ..., "metadata": ..., "arrays": [...]}
    rest      raw array bytes, concatenated in array-table order

Each array-table entry is ``{"name", "dtype": "<f4", "shape", "offset", "nbytes", "sha256"}`` with
offsets relative to the start of the array bytes, contiguous and covering them exactly. Writing is
deterministic (sorted JSON keys, arrays sorted by name) and atomic (temp file in the target's
directory, flushed to disk, then os.replace), so the same model always gives the same bytes and a
failed or interrupted write leaves the previous file as it was. Loading reads only regular files of
at most MAX_FILE_BYTES, validates everything (including that the network fits the task the metadata
names) and raises a named ``CheckpointError`` subclass; it never executes anything from the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
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
    OutputPathError,
    ShapeMismatch,
    TaskMismatch,
    UnknownLayerType,
    UnsupportedSchema,
)
from models.layers import LAYER_TYPES, NON_NEGATIVE
from models.network import expected_shapes, predecessors, shown, validate_graph
from models.tasks import SHAPES, TaskShape

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


def _unique_keys(pairs) -> dict:
    """A JSON object naming each key once: with a repeated key, which value counts is a guess."""
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise CorruptCheckpoint(
                f"header repeats the key {shown(key)} in one object; the file "
                "was not written by save_checkpoint, re-export it"
            )
        obj[key] = value
    return obj


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
        table.append(
            {
                "name": name,
                "dtype": DTYPE,
                "shape": list(arr.shape),
                "offset": offset,
                "nbytes": len(raw),
                "sha256": hashlib.sha256(raw).hexdigest(),
            }
        )
        blobs.append(raw)
        offset += len(raw)
    header = _canonical_json({"graph": ckpt.graph, "metadata": ckpt.metadata, "arrays": table})
    return _PREFIX.pack(MAGIC, SCHEMA_VERSION, len(header)) + header + b"".join(blobs)


def check_output_path(path) -> str:
    """Refuse an output path a checkpoint could not be written to, before any work is spent on it.

    The parent must be an existing, writable directory and the target must not be a directory or
    another non-regular file (an existing checkpoint is replaced). Returns the path as a string.
    """
    text = os.fspath(path)
    if not text or "\0" in text or text.endswith(os.sep):
        raise OutputPathError(
            f"output path {shown(text)} does not name a file; pass a file path such as models/my_model.ckpt"
        )
    parent = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise OutputPathError(f"output {shown(text)} is a directory; pass a file path inside it, e.g. DIR/model.ckpt")
    if os.path.lexists(text) and not os.path.isfile(text) and not os.path.islink(text):
        raise OutputPathError(
            f"output {shown(text)} exists and is not a regular file (a pipe, socket or device); choose another path"
        )
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.lexists(parent) else "does not exist"
        raise OutputPathError(
            f"the directory of output {shown(text)} {what}; create it (mkdir -p) or choose another path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"directory {shown(parent)} is not writable; choose another path")
    return text


def save_checkpoint(path, ckpt: Checkpoint) -> None:
    """Write atomically: a reader never sees a half-written file, and a failure (full disk, Ctrl-C)
    leaves the previous file, if any, untouched and no temporary file behind."""
    data = encode(ckpt)
    path = check_output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ckpt-", dir=os.path.dirname(os.path.abspath(path)))
    except OSError as exc:
        raise OutputPathError(f"cannot write {shown(path)}: {exc.strerror}; choose another path") from exc
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputPathError(
                f"cannot write {shown(path)}: {exc.strerror}; free space or choose another path"
            ) from exc
        raise


def _check_opened(info: os.stat_result, name: str) -> None:
    """Refuse what must not be read: anything but a regular file, or one over the size limit."""
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(
            f"checkpoint {name} is not a regular file (a directory, pipe or device); pass a .ckpt file"
        )
    if info.st_size > MAX_FILE_BYTES:
        raise CorruptCheckpoint(
            f"checkpoint {name} is {info.st_size} bytes, over the "
            f"{MAX_FILE_BYTES} byte limit; it is not a model checkpoint"
        )


def _read_regular_file(path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES. Opened without blocking and checked
    on the open descriptor, so a pipe, device or directory is refused instead of read."""
    name = shown(os.fspath(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {name}: {getattr(exc, 'strerror', exc)}; check the path"
        ) from exc
    try:
        _check_opened(os.fstat(fd), name)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {name}: {exc.strerror}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise CorruptCheckpoint(
            f"checkpoint {name} grew past the {MAX_FILE_BYTES} byte limit while it was read; pass a finished .ckpt file"
        )
    return data


def load_checkpoint(path) -> Checkpoint:
    """Read and fully validate a checkpoint file."""
    return decode(_read_regular_file(path))


def _parse_header(data: bytes) -> dict:
    if len(data) < _PREFIX.size or data[:8] != MAGIC:
        raise BadMagic(
            f"not a checkpoint: expected the magic bytes {MAGIC!r} at the start; "
            "pass a .ckpt file written by models.checkpoint.save_checkpoint"
        )
    _, version, n = _PREFIX.unpack_from(data)
    if version != SCHEMA_VERSION:
        raise UnsupportedSchema(
            f"schema version {version} is not supported (this package reads "
            f"version {SCHEMA_VERSION}); use a matching package version"
        )
    if n > MAX_HEADER_BYTES or _PREFIX.size + n > len(data):
        raise CorruptCheckpoint(f"header length {n} exceeds the file; the file is truncated")
    try:
        header = json.loads(
            data[_PREFIX.size : _PREFIX.size + n].decode("utf-8"),
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except CheckpointError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptCheckpoint(
            f"header is not valid UTF-8 JSON ({exc}); the file is damaged, re-download or re-export it"
        ) from None
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
            raise CorruptCheckpoint(f"array name {shown(name)} is not a string or is duplicated")
        seen.add(name)
        name = shown(name)
        if e["dtype"] != DTYPE:
            raise CorruptCheckpoint(f"array {name} has dtype {shown(e['dtype'])}; only {DTYPE!r}")
        if not (
            isinstance(shape, list)
            and len(shape) <= 8
            and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= 1 << 30 for s in shape)
        ):
            raise CorruptCheckpoint(f"array {name} has an invalid shape {shown(shape)}")
        nbytes = 4 * math.prod(shape)
        if e["nbytes"] != nbytes or e["offset"] != offset or isinstance(e["offset"], bool):
            raise CorruptCheckpoint(f"array {name}: offset/nbytes disagree with the table layout")
        if not isinstance(e["sha256"], str):
            raise CorruptCheckpoint(f"array {name}: sha256 must be a hex string")
        offset += nbytes
    if offset != payload_len:
        raise CorruptCheckpoint(
            f"array data is {payload_len} bytes but the table describes "
            f"{offset}; the file is truncated or has trailing bytes"
        )
    return table


def decode(data: bytes) -> Checkpoint:
    """Parse and validate checkpoint bytes."""
    header = _parse_header(data)
    graph = header["graph"]
    validate_graph(graph)
    n = _PREFIX.unpack_from(data)[2]
    payload = memoryview(data)[_PREFIX.size + n :]
    table = _check_table(header["arrays"], len(payload))
    arrays = {}
    for e in table:
        raw = bytes(payload[e["offset"] : e["offset"] + e["nbytes"]])
        if hashlib.sha256(raw).hexdigest() != e["sha256"]:
            raise CorruptCheckpoint(
                f"array {shown(e['name'])} fails its sha256 check; the file is damaged, re-download or re-export it"
            )
        arr = np.frombuffer(raw, dtype=DTYPE).reshape(e["shape"]).astype(np.float32)
        arr.flags.writeable = False
        arrays[e["name"]] = arr
    validate(graph, arrays)
    _check_metadata_task(graph, header["metadata"])
    return Checkpoint(graph=graph, arrays=arrays, metadata=header["metadata"])


def _pools_time(graph) -> bool:
    """True if the graph output comes after a time pooling (one value per sequence)."""
    pools = {layer["name"]: LAYER_TYPES[layer["type"]].pools_time for layer in graph["layers"]}
    preds = predecessors(graph)
    todo, seen = [graph["outputs"][0]], set()
    while todo:
        name = todo.pop()
        if pools[name]:
            return True
        seen.add(name)
        todo.extend(p for p in preds[name] if p not in seen)
    return False


def network_shape(graph) -> TaskShape:
    """Input width, output width and time pooling of a graph, to compare with a task's."""
    features = validate_graph(graph)
    return TaskShape(features[graph["inputs"][0]], features[graph["outputs"][0]], _pools_time(graph))


def check_task(graph, task: str, outputs: bool = True) -> None:
    """Raise TaskMismatch unless the network fits the known task: its input width and per-frame or
    pooled readout, and with ``outputs`` its output width (what scoring the task needs)."""
    want, have = SHAPES[task], network_shape(graph)
    readout = {True: "one output per sequence (time pooling)", False: "outputs per frame"}
    if have.n_in != want.n_in:
        raise TaskMismatch(
            f"the network's input is {have.n_in} wide but task {task!r} gives "
            f"{want.n_in} input features per frame; the metadata 'task' does not "
            "belong to this network: correct it or retrain for the task"
        )
    if have.pool != want.pool:
        raise TaskMismatch(
            f"the network gives {readout[have.pool]} but task {task!r} needs "
            f"{readout[want.pool]}; correct the metadata 'task' or retrain"
        )
    if outputs and have.n_out != want.n_out:
        raise TaskMismatch(
            f"the network's output is {have.n_out} wide but task {task!r} scores "
            f"{want.n_out} output features; correct the metadata 'task' or retrain"
        )


def _check_metadata_task(graph, metadata: dict) -> None:
    """The task a checkpoint names must be a name; a known task must be able to drive the network
    (input width and readout kind). Unknown names load: only evaluating them needs the task."""
    task = metadata.get("task")
    if task is None:
        return
    if not isinstance(task, str):
        raise CorruptCheckpoint(
            f"metadata 'task' is {shown(task)}, not a task name; correct it (known tasks: {', '.join(SHAPES)})"
        )
    if task in SHAPES:
        check_task(graph, task, outputs=False)


def validate(graph, arrays) -> None:
    """Check that arrays match the graph exactly: names, shapes, finiteness, physical ranges."""
    validate_graph(graph)
    want = expected_shapes(graph)
    missing = sorted(set(want) - set(arrays))
    if missing:
        raise MissingArray(
            f"arrays {shown(missing)} are required by the graph but absent; re-export the model with all its parameters"
        )
    extra = sorted(set(arrays) - set(want))
    if extra:
        raise ExtraArray(
            f"arrays {shown(extra)} are not used by any layer of the graph; remove them or fix the layer names"
        )
    for name, shape in want.items():
        arr = np.asarray(arrays[name])
        if tuple(arr.shape) != shape:
            raise ShapeMismatch(
                f"array {name!r} has shape {tuple(arr.shape)} but the graph "
                f"implies {shape}; the graph and the arrays do not belong together"
            )
        if not np.all(np.isfinite(arr)):
            raise NonFiniteArray(
                f"array {name!r} contains NaN or Inf; the model diverged, retrain it or restore an earlier checkpoint"
            )
    for layer in graph["layers"]:
        for param in NON_NEGATIVE.get(layer["type"], ()):
            key = f"{layer['name']}.{param}"
            if np.any(np.asarray(arrays[key]) < 0):
                raise ConstraintViolation(
                    f"{key} has negative entries but is a bias current; "
                    "clip it at 0 (training projects it automatically)"
                )
