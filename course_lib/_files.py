"""Writing a file so that nobody ever sees half of it, written once.

Private: the caches (parsed corpora, trained tokenizers) and the checkpoints all write through
:func:`atomic_write`, so a crash, a full disk or a second process reading at the same moment
finds either the old file or the complete new one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None], *, fsync: bool = True) -> Path:
    """Call ``write(tmp)`` with a fresh temporary path next to ``path``, then rename it onto ``path``.

    The temporary file sits in the same folder (created if missing), so ``os.replace`` is an
    atomic rename on one file system. If ``write`` (or anything after it) raises, the temporary
    file is removed, ``path`` is left as it was, and the error propagates. ``fsync`` flushes the
    bytes to disk before the rename, so a power cut cannot leave an empty file under ``path``.

    Returns ``path`` as a ``Path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name no other process picks; ``write`` creates the file itself (as save_file and
    # gzip.open do), so it gets the usual permissions rather than mkstemp's owner-only ones.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb") as written:
                os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
