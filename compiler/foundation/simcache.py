"""Content-addressed cache of simulation results.

The key covers everything that can change a result: the deck text (circuit, stimuli, options,
corner, seed), the bytes of every model file the deck reads, and the ngspice version. An entry is
one file holding its own key, a checksum, the ngspice log and the raw file; it is written to a
temporary file and renamed into place, so concurrent writers never expose half an entry. An entry
whose checksum does not match, or that names another key (copied or planted under this key's path),
is deleted and simulated again.

The cache is best effort: one that cannot be read is a miss and one that cannot be written (read-only,
a file where the directory should be, disk full) warns once and leaves the results uncached, so the
simulations already run are never lost to it. It is as trusted as its directory's permissions: whoever
can write there can store fabricated results for a deck they know.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

from compiler.foundation.errors import clip
from compiler.foundation.pdk import files_read_by

FORMAT = 2  # 2: the entry names its key


class CacheWarning(UserWarning):
    """The simulation cache cannot be read or written; results are simulated and kept in memory only."""


def default_cache() -> "SimCache | None":
    """The cache at `$FQRNN_CACHE_DIR` (a leading ~ is the home directory), else `$XDG_CACHE_HOME/fqrnn/sim`;
    `FQRNN_CACHE_DIR=off` disables it."""
    where = os.environ.get("FQRNN_CACHE_DIR")
    if where and where.lower() in {"off", "none", "0"}:
        return None
    if not where:
        where = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fqrnn" / "sim"
    return SimCache(Path(os.path.expanduser(where)))


class SimCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._warned = False

    def key(self, deck: str, ngspice_version: str) -> str:
        digest = hashlib.sha256()
        digest.update(f"fqrnn-sim-cache {FORMAT}\n{ngspice_version}\n".encode())
        for path in files_read_by(deck):
            digest.update(f"{path}:{_file_hash(path, *_stamp(path))}\n".encode())
        digest.update(deck.encode())
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.sim"

    def get(self, key: str) -> tuple[str, bytes, float] | None:
        """The cached (log, raw, wall time), or None when absent, unreadable or corrupt (a corrupt entry is removed)."""
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            self._warn("read", error)
            return None
        entry = _decoded(data, key)
        if entry is None:
            self.discard(key)
        return entry

    def put(self, key: str, log: str, raw: bytes, wall_time: float) -> None:
        """Store an entry; a cache that cannot be written warns once instead of failing the run."""
        try:
            _write_atomically(self.path(key), _encoded(key, log, raw, wall_time))
        except OSError as error:
            self._warn("written", error)

    def discard(self, key: str) -> None:
        """Remove the entry for `key`, if it can be: a corrupt entry left in place is only simulated again."""
        try:
            self.path(key).unlink(missing_ok=True)
        except OSError:
            pass

    def _warn(self, verb: str, error: OSError) -> None:
        if self._warned:
            return
        self._warned = True
        warnings.warn(
            CacheWarning(
                f"the simulation cache at {clip(str(self.root))} cannot be {verb} ({error.strerror or error}); "
                "results are not cached. Point FQRNN_CACHE_DIR at a writable directory, or set it to off."
            ),
            stacklevel=3,
        )


def _encoded(key: str, log: str, raw: bytes, wall_time: float) -> bytes:
    payload = log.encode() + raw
    meta = {
        "format": FORMAT,
        "key": key,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "log_bytes": len(log.encode()),
        "wall_time": wall_time,
    }
    return json.dumps(meta).encode() + b"\n" + payload


def _decoded(data: bytes, key: str) -> tuple[str, bytes, float] | None:
    """(log, raw, wall time) of an entry stored under `key`, or None when it is corrupt or another key's."""
    head, _, payload = data.partition(b"\n")
    try:
        meta = json.loads(head)
        if meta["format"] != FORMAT or meta["key"] != key or hashlib.sha256(payload).hexdigest() != meta["sha256"]:
            return None
        log_bytes = meta["log_bytes"]
        if not isinstance(log_bytes, int) or not 0 <= log_bytes <= len(payload):
            return None
        return payload[:log_bytes].decode(), payload[log_bytes:], float(meta["wall_time"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path` and rename it into place; no partial file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".sim")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@functools.cache
def _file_hash(path: Path, mtime_ns: int, size: int) -> str:
    """sha256 of a model file, remembered while its modification time and size stay the same."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
