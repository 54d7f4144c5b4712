"""Writing output files atomically: the one place that does it.

Every file the toolkit writes (curves, stores, exports, figures, reports, JSON summaries) is
first written to a temporary file in the same directory and then renamed into place with
``os.replace``, so a reader never sees a half-written file and a crash leaves the old file (or
none) behind. The file gets the permissions a plain ``open`` would give it (``0o666`` less the
umask), not the private ``0o600`` of a temporary file.

:func:`check_file_target` and :func:`check_dir_target` say, before any work, whether an output
path can be written, so that a command refuses a bad ``--out`` in one line instead of failing
after its work is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from l2dynamics.errors import L2DynError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    Whatever the body writes to the yielded path becomes ``path`` at once when the body
    returns; if the body raises, the temporary file is removed and ``path`` is untouched.
    ``suffix`` ends the temporary name (some writers pick a format from it).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path`` as a Path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data: Any, **dumps: Any) -> Path:
    """Write ``data`` as indented JSON (and a final newline) to ``path`` atomically; ``dumps``
    go to :func:`json.dumps` (``default=``, ``allow_nan=``)."""
    return write_text(path, json.dumps(data, indent=2, **dumps) + "\n")


def check_file_target(path: str | os.PathLike, option: str) -> None:
    """Raise :class:`L2DynError` (naming ``option``) unless a file can be written at ``path``:
    it is not a directory, and its directory exists, is a directory and takes new files."""
    path = Path(path)
    if path.is_dir():
        raise L2DynError(f"{option}: {path} is a directory; give a file name")
    _check_writable_dir(path.parent, option)


def check_dir_target(path: str | os.PathLike, option: str) -> None:
    """Raise :class:`L2DynError` (naming ``option``) unless ``path`` is, or can be made as, a
    directory that takes new files (its parent must exist)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise L2DynError(f"{option}: {path} is a file, not a directory")
    _check_writable_dir(path if path.is_dir() else path.parent, option)


def _check_writable_dir(folder: Path, option: str) -> None:
    """``folder`` exists, is a directory, and a file can be created in it (tried: permission
    bits alone do not tell for root, read-only mounts or ACLs)."""
    if not folder.is_dir():
        blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise L2DynError(f"{option}: {blocker} is not a directory")
        raise L2DynError(f"{option}: directory {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".l2dyn-probe-")
    except OSError as exc:
        raise L2DynError(
            f"{option}: cannot write in directory {folder} ({exc.strerror or exc})"
        ) from None
    os.close(fd)
    os.unlink(probe)
