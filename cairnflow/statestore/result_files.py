"""Large checkpointed results, kept as files beside the database.

A result over the store's threshold (1 MiB by default) is written to
``<database dir>/results/<run id>/<uuid>.pkl`` atomically and durably *before*
the transaction that records it, so a committed row never points to a file
that is not complete on disk. A file whose transaction then fails is removed;
a crash in between leaves an orphan file in the run's directory, which goes
with the run when it is deleted.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

from cairnflow._digest import sha256_hex
from cairnflow.exceptions import ResultLoadError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ResultFiles", "StoredFile"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


class StoredFile(NamedTuple):
    """Where a result file went: ``path`` is relative to the results directory.

    (A NamedTuple, not a dataclass: every store module imports it, and a dataclass
    costs a run's process about a millisecond to make.)"""

    path: str
    size: int
    sha256: str


class ResultFiles:
    """The results directory of one database.

    Args:
        root: the directory, created on first write.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = os.fspath(root)

    @cached_property
    def root(self) -> Path:
        """The directory (pathlib, imported here: a run whose results are all small
        never needs it)."""
        from pathlib import Path

        return Path(self._root)

    def write(self, run_id: str, data: bytes) -> StoredFile:
        """Write ``data`` to a new file, durably, and return where it is."""
        import uuid  # (with platform) only for a large result: a read needs neither

        run_dir = self._run_dir(run_id)
        self._make_dir(run_dir)
        name = f"{uuid.uuid4().hex}.pkl"
        tmp = run_dir / f".{name}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, run_dir / name)
        except BaseException:
            # A full disk must not stay full of our partial file.
            _unlink(tmp)
            raise
        _fsync_dir(run_dir)
        return StoredFile(f"{run_dir.name}/{name}", len(data), sha256_hex(data))

    def read(self, stored: StoredFile, what: str) -> bytes:
        """The file's bytes; ``ResultLoadError`` naming ``what`` if missing or damaged."""
        path = self.root / stored.path
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ResultLoadError(
                f"cannot load {what}: its file {path} cannot be read "
                f"({exc.strerror or exc})") from exc
        if len(data) != stored.size or sha256_hex(data) != stored.sha256:
            raise ResultLoadError(
                f"cannot load {what}: its file {path} is damaged (size or checksum "
                "differs from what was written)")
        return data

    def remove(self, relative: str) -> None:
        """Delete one result file, if it is there."""
        try:
            os.unlink(self.root / relative)
        except FileNotFoundError:
            pass

    def remove_temporaries(self, run_id: str) -> None:
        """Delete the run's temporary files that a killed process left half-written."""
        run_dir = self._run_dir(run_id)
        if run_dir.is_dir():
            for tmp in run_dir.glob(".*.pkl.tmp"):
                _unlink(tmp)

    def remove_run(self, run_id: str) -> None:
        """Delete all result files of a run."""
        import shutil  # (with its archive formats) only for deletes: 3 ms of a run's process

        shutil.rmtree(self._run_dir(run_id), ignore_errors=True)

    def _run_dir(self, run_id: str) -> Path:
        # Run ids are uuids; anything else becomes a safe, stable directory name.
        if _SAFE_NAME.fullmatch(run_id) and len(run_id) <= 128:
            return self.root / run_id
        return self.root / sha256_hex(run_id.encode())[:32]

    def _make_dir(self, run_dir: Path) -> None:
        if run_dir.is_dir():
            return
        new_root = not self.root.is_dir()
        run_dir.mkdir(parents=True, exist_ok=True)
        if new_root:
            _fsync_dir(self.root.parent)
        _fsync_dir(self.root)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(path: Path) -> None:
    # A rename or a new entry is durable only once its directory is synced.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)
