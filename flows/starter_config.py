"""`python -m compiler config MODEL.ckpt`: a starter YAML configuration listing every stage of the model."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from compiler.config import file_label, starter_config
from compiler.foundation.errors import UsageError
from compiler.frontend import load_network
from compiler.lower import lower


class ConfigOutputError(UsageError):
    """The starter configuration cannot be written where -o points."""


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="a model checkpoint (.ckpt)")
    parser.add_argument("-o", "--out", default=None, help="write the YAML here instead of the terminal")


def run(args) -> int:
    out = None if args.out is None else Path(args.out)
    if out is not None:
        check_output_path(out)
    text = starter_config(lower(load_network(args.checkpoint)))
    if out is None:
        print(text, end="")
        return 0
    write_atomically(out, text)
    print(f"wrote {out}")
    return 0


def check_output_path(out: Path) -> None:
    """Refuse, before any work, an -o that is a directory, a non-regular file or inside a missing directory."""
    name = file_label(out)
    if not out.parent.is_dir():
        raise ConfigOutputError(
            f"cannot write {name}: the directory {file_label(out.parent)} does not exist; "
            "create it or choose another -o"
        )
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigOutputError(f"cannot write {name}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise ConfigOutputError(f"-o {name} is a directory; give a file path such as {file_label(out / 'config.yaml')}")
    if not stat.S_ISREG(mode):
        raise ConfigOutputError(f"-o {name} exists and is not a regular file; choose another -o")


def write_atomically(out: Path, text: str) -> None:
    """Write `text` to `out` through a temporary file beside it, so `out` is either the old file or the new
    one; the temporary file is removed on any failure."""
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".config-")
    except OSError as exc:
        raise ConfigOutputError(f"cannot write {file_label(out)}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a configuration is shared like any other output
        os.replace(tmp, out)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ConfigOutputError(f"cannot write {file_label(out)}: {exc.strerror or exc}") from None
        raise
