"""Text files under one root folder, with the same transaction semantics as the other adapters.

Writes and deletes are staged per transaction and applied on commit; a handler that raises (or
times out) leaves the folder as it was. Reads inside a transaction see its own staged writes.

Commit is two-phase: every new content is first written (and fsynced) to a temporary file next
to its target, then each temporary file is moved over its target with :func:`os.replace`. A
failure in the first phase (disk full, a folder where a file should go) applies nothing; each
file is replaced atomically, so a reader never sees a half-written file. Commits of one
:class:`FileUnitOfWork` do not interleave. Two transactions that write the same file: the last
commit wins (there is no conflict detection).

Every path is relative to the root and checked before use: absolute paths, ``..`` components
and symbolic links that lead outside the root raise :class:`UnsafePathError`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from bollydog.errors import BollydogError, ConfigError
from bollydog.models.protocol import Protocol, UnitOfWork

_TMP_MARK = ".bollydog-tmp-"


class UnsafePathError(BollydogError, ValueError):
    """A path given to :class:`FileProtocol` would lead outside its root folder."""


class _Staged:
    """A transaction: the new content of each path (None = delete), in write order."""

    __slots__ = ("writes",)

    def __init__(self) -> None:
        self.writes: dict[str, str | None] = {}


class FileUnitOfWork(UnitOfWork):
    """A folder of text files. ``root`` is created on connect unless ``create`` is false.

    Options: ``encoding`` (utf-8) of every file; ``fsync`` (true) flushes each file to disk
    before it replaces the old one, so a crash leaves the old or the new content, never an
    empty file.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        encoding: str = "utf-8",
        create: bool = True,
        fsync: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.root = Path(root)
        self.encoding = encoding
        self.create = create
        self.fsync = fsync
        self._real_root = os.path.realpath(self.root)
        self._commit_lock = asyncio.Lock()

    async def connect(self) -> None:
        try:
            if self.create:
                await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"file adapter root '{self.root}' cannot be created: {exc.strerror}") from None
        if not self.root.is_dir():
            raise ConfigError(
                f"file adapter root '{self.root}' is not a folder"
                + ("" if self.create else " (create: false, so it must exist)")
            )
        self._real_root = os.path.realpath(self.root)

    async def begin(self) -> _Staged:
        return _Staged()

    async def commit(self, transaction: _Staged) -> None:
        if not transaction.writes:
            return
        writes = list(transaction.writes.items())
        transaction.writes.clear()
        async with self._commit_lock:
            applying = asyncio.ensure_future(asyncio.to_thread(self._apply, writes))
            try:
                await asyncio.shield(applying)
            except asyncio.CancelledError:
                # A thread cannot be stopped: let it finish before the next commit may start.
                await asyncio.wait({applying})
                raise

    async def rollback(self, transaction: _Staged) -> None:
        transaction.writes.clear()

    # -- paths ------------------------------------------------------------------------------------

    def key(self, path: str | os.PathLike[str]) -> str:
        """``path`` normalised to ``a/b.txt``, refused if it could leave the root."""
        raw = os.fspath(path)
        if not isinstance(raw, str):
            raise UnsafePathError(f"path must be text, got {type(raw).__name__}")
        if not raw or "\x00" in raw:
            raise UnsafePathError(f"invalid path {raw!r}: empty or contains NUL")
        pure = PurePosixPath(raw.replace("\\", "/"))
        if pure.is_absolute() or PureWindowsPath(raw).drive:
            raise UnsafePathError(f"path {raw!r} is absolute; give a path relative to the root")
        parts = [p for p in pure.parts if p != "."]
        if ".." in parts:
            raise UnsafePathError(f"path {raw!r} contains '..'; paths stay inside the root")
        if not parts:
            raise UnsafePathError(f"path {raw!r} names the root itself, not a file")
        return "/".join(parts)

    def resolve(self, key: str) -> str:
        """The real file path of ``key``, refused if a symbolic link leads outside the root."""
        real = os.path.realpath(os.path.join(self._real_root, key))
        if os.path.commonpath([real, self._real_root]) != self._real_root or real == self._real_root:
            raise UnsafePathError(f"path {key!r} leads outside the root through a symbolic link")
        return real

    # -- blocking IO, run in a worker thread ------------------------------------------------------

    def read_now(self, key: str) -> str | None:
        try:
            with open(self.resolve(key), encoding=self.encoding, newline="") as file:
                return file.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def exists_now(self, key: str) -> bool:
        return os.path.isfile(self.resolve(key))

    def list_now(self) -> list[str]:
        found = []
        for folder, dirs, files in os.walk(self._real_root):
            dirs.sort()
            for name in files:
                if _TMP_MARK in name:
                    continue
                full = os.path.join(folder, name)
                rel = os.path.relpath(full, self._real_root).replace(os.sep, "/")
                try:
                    if os.path.isfile(self.resolve(rel)):
                        found.append(rel)
                except UnsafePathError:
                    continue  # a link out of the root: not ours to show
        return found

    def _apply(self, writes: list[tuple[str, str | None]]) -> None:
        # Phase 1: new contents to temporary files beside their targets. Nothing is visible yet.
        prepared: list[tuple[str, str | None]] = []
        try:
            for key, text in writes:
                target = self.resolve(key)
                if os.path.isdir(target):  # os.replace/unlink would fail in phase 2, half-applied
                    raise IsADirectoryError(errno.EISDIR, f"a folder is in the way of file {key!r}", target)
                if text is None:
                    prepared.append((target, None))
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                fd, tmp = tempfile.mkstemp(
                    dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}{_TMP_MARK}"
                )
                prepared.append((target, tmp))
                os.fchmod(fd, _mode_for(target))  # mkstemp's 0600 would leak into the target
                with os.fdopen(fd, "w", encoding=self.encoding, newline="") as file:
                    file.write(text)
                    if self.fsync:
                        file.flush()
                        os.fsync(file.fileno())
        except BaseException:
            for _, written in prepared:
                if written is not None:
                    _unlink(written)
            raise
        # Phase 2: each replace is atomic.
        for done, (target, written) in enumerate(prepared):
            try:
                if written is None:
                    _unlink(target)
                else:
                    os.replace(written, target)
            except BaseException:
                for _, left in prepared[done:]:  # no temporary file is left behind
                    if left is not None:
                        _unlink(left)
                raise


def _process_umask() -> int:
    try:  # Linux: read it without changing it (changing it races with other threads)
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_NEW_FILE_MODE: int | None = None


def _mode_for(target: str) -> int:
    """Keep the permissions of the file being replaced; new files get the umask's default."""
    global _NEW_FILE_MODE
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        if _NEW_FILE_MODE is None:
            _NEW_FILE_MODE = 0o666 & ~_process_umask()
        return _NEW_FILE_MODE


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class FileProtocol(Protocol):
    """Read and write text files by path relative to the unit of work's root.

    Inside a handler every call joins the handler's transaction. Outside one (a script, a
    test), each write is its own transaction, committed at once. Without a ``unit_of_work``,
    the keyword options (``root``, ...) create one.
    """

    unit_of_work: FileUnitOfWork
    unit_of_work_class = FileUnitOfWork

    def __init__(self, unit_of_work: UnitOfWork | None = None, **options: Any) -> None:
        if unit_of_work is None:
            # Shorthand: the protocol section alone, with the unit of work's options.
            if "root" not in options:
                raise ConfigError("FileProtocol needs a unit_of_work section (FileUnitOfWork) or a 'root' option")
            unit_of_work, options = FileUnitOfWork(**options), {}
        if not isinstance(unit_of_work, FileUnitOfWork):
            raise TypeError(f"FileProtocol needs a FileUnitOfWork, got {type(unit_of_work).__name__}")
        super().__init__(unit_of_work, **options)

    async def _staged(self) -> _Staged | None:
        """The handler's transaction, or None outside a handler."""
        if not self.unit_of_work.in_handler():
            return None
        staged: _Staged = await self.unit_of_work.transaction()  # what begin() made
        return staged

    async def _stage(self, key: str, text: str | None) -> None:
        tx = await self._staged()
        if tx is None:
            tx = _Staged()
            tx.writes[key] = text
            await self.unit_of_work.commit(tx)
        else:
            tx.writes.pop(key, None)  # keep write order = order of last write
            tx.writes[key] = text

    async def read(self, path: str) -> str | None:
        """The text of ``path``, or None when there is no such file."""
        key = self.unit_of_work.key(path)
        tx = await self._staged()
        if tx is not None and key in tx.writes:
            return tx.writes[key]
        return await asyncio.to_thread(self.unit_of_work.read_now, key)

    async def write(self, path: str, text: str) -> None:
        """Replace the content of ``path`` (created with its folders) when the handler commits."""
        if not isinstance(text, str):
            raise TypeError(f"write() takes text (str), got {type(text).__name__}")
        key = self.unit_of_work.key(path)
        self.unit_of_work.resolve(key)  # refuse escaping links now, not at commit
        await self._stage(key, text)

    async def delete(self, path: str) -> bool:
        """Delete ``path`` when the handler commits; False if there was no such file."""
        if not await self.exists(path):
            return False
        await self._stage(self.unit_of_work.key(path), None)
        return True

    async def exists(self, path: str) -> bool:
        key = self.unit_of_work.key(path)
        tx = await self._staged()
        if tx is not None and key in tx.writes:
            return tx.writes[key] is not None
        return await asyncio.to_thread(self.unit_of_work.exists_now, key)

    async def list(self, prefix: str = "") -> list[str]:
        """Sorted paths (``a/b.txt``) of the files whose path starts with ``prefix``."""
        if prefix:
            if prefix.startswith(("/", "\\")) or ".." in PurePosixPath(prefix.replace("\\", "/")).parts:
                raise UnsafePathError(f"prefix {prefix!r} must be relative and without '..'")
        names = set(await asyncio.to_thread(self.unit_of_work.list_now))
        tx = await self._staged()
        if tx is not None:
            for key, text in tx.writes.items():
                if text is None:
                    names.discard(key)
                else:
                    names.add(key)
        return sorted(n for n in names if n.startswith(prefix))
