"""On-disk caching: content keys for expensive steps and atomic writes of their results.

Every expensive step writes into a directory named by a key of its inputs. The directory
is built under a temporary name and renamed into place only when complete, so a killed
run never leaves a half-written result that a later run would mistake for a finished one.
Readers see the old directory or the new one, never neither; `build_once` lets concurrent
runs share one build of an entry (a lock file beside it); folders get the umask's
permissions, so a cache shared by a group stays readable by the group.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_LIBC = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def fingerprint(*parts: Any, length: int = 16) -> str:
    """A stable hex key of JSON-serialisable `parts` (dataclasses via their dict)."""
    payload = json.dumps(parts, sort_keys=True, default=_jsonable, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


def file_digest(path: str | Path, length: int = 16) -> str:
    """sha256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def directory_digest(path: str | Path, length: int = 16, leave_out: tuple[str, ...] = ()) -> str:
    """A key of every file under `path` (names and bytes) but those named in `leave_out` (relative paths)."""
    root = Path(path)
    entries = sorted(p for p in root.rglob("*") if p.is_file() and str(p.relative_to(root)) not in leave_out)
    return fingerprint([(str(p.relative_to(root)), file_digest(p)) for p in entries], length=length)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


@contextlib.contextmanager
def replacing_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; it replaces `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) so that readers see either the old file or the whole new one."""
    with replacing_file(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented UTF-8 JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_jsonable) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to fill; it replaces `path` only on success, in one step for readers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temporary.mkdir()  # not tempfile.mkdtemp, whose folders are owner-only whatever the umask
    try:
        yield temporary
        _publish(temporary, path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)  # after an exchange it holds the old folder


def _publish(temporary: Path, path: Path) -> None:
    """Move the folder `temporary` to `path`: a rename if `path` is absent, else an exchange with it."""
    while True:
        try:
            os.rename(temporary, path)
            return
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        with contextlib.suppress(FileNotFoundError):  # `path` removed meanwhile: rename again
            _exchange(temporary, path)
            return


def _exchange(temporary: Path, path: Path) -> None:
    """Swap two folders: in one step where the system can (Linux `renameat2`), else by moving `path`
    aside first (file systems without RENAME_EXCHANGE, such as NFS: readers may miss it for an instant)."""
    renameat2 = getattr(_LIBC, "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(temporary), _AT_FDCWD, os.fsencode(path), _RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(path))
    aside = temporary.with_name(f"{temporary.name}.old")
    os.rename(path, aside)
    os.rename(temporary, path)
    os.rename(aside, temporary)


@contextlib.contextmanager
def entry_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on `<path>.lock` (fcntl.flock) while building `path`; one line on stderr
    when another process holds it. The lock file stays behind (removing it would race with waiters)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.with_name(f"{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {path} (another run is building it)", file=sys.stderr, flush=True)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def build_once(path: str | Path, is_complete: Callable[[Path], bool], build: Callable[[Path], None]) -> Path:
    """Return the folder `path`, first filled by `build(temporary)` unless `is_complete(path)`.

    One process builds an entry at a time (`entry_lock`); one that waited reuses what the other built.
    What a killed build left (its temporary folder) is removed before the entry is built again.
    A build is published only if `is_complete` accepts it, so nothing unreadable is taken for finished.
    """
    path = Path(path)
    if is_complete(path):
        return path
    with entry_lock(path):
        if not is_complete(path):
            for stale in path.parent.glob(f".{path.name}.*.tmp"):  # a killed build's: nobody else holds the lock
                shutil.rmtree(stale, ignore_errors=True)
            with atomic_directory(path) as temporary:
                build(temporary)
                if not is_complete(temporary):
                    raise RuntimeError(f"{path}: the new entry is incomplete or does not load back; not published")
    return path


def model_digest(source: str | Path) -> str:
    """A key of a model: its files' digest when it is a local folder (its card, README.md, left out:
    stage 04 adds scores to it), else its hub id."""
    path = Path(source)
    return directory_digest(path, leave_out=("README.md",)) if path.is_dir() else str(source)
