"""Content-addressed cache of simulation results.

The key covers everything that can change a result: the deck text (circuit, stimuli, options,
corner, seed), the bytes of every model file the deck reads, and the ngspice version. An entry is
one file holding a checksum, the ngspice log and the raw file; it is written to a temporary file
and renamed into place, so concurrent writers never expose half an entry, and an entry whose
checksum does not match is deleted and simulated again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

from compiler.pdk import files_read_by

FORMAT = 1


def default_cache() -> "SimCache | None":
    """The cache at `$FQRNN_CACHE_DIR`, else `$XDG_CACHE_HOME/fqrnn/sim`; `FQRNN_CACHE_DIR=off` disables it."""
    where = os.environ.get("FQRNN_CACHE_DIR")
    if where and where.lower() in {"off", "none", "0"}:
        return None
    if not where:
        where = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fqrnn" / "sim"
    return SimCache(Path(where))


class SimCache:
    def __init__(self, root: Path):
        self.root = Path(root)

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
        """The cached (log, raw, wall time), or None when absent or corrupt (a corrupt entry is removed)."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            head, _, payload = data.partition(b"\n")
            meta = json.loads(head)
            if meta["format"] != FORMAT or hashlib.sha256(payload).hexdigest() != meta["sha256"]:
                raise ValueError("checksum mismatch")
            log = payload[: meta["log_bytes"]].decode()
            raw = payload[meta["log_bytes"]:]
            return log, raw, float(meta["wall_time"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, log: str, raw: bytes, wall_time: float) -> None:
        payload = log.encode() + raw
        meta = {
            "format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
            "log_bytes": len(log.encode()), "wall_time": wall_time,
        }
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".sim")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(meta).encode() + b"\n" + payload)
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
