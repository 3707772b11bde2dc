"""Output folders that change as a whole: a failed, killed or interrupted build leaves each
output folder holding either its whole old set of files or its whole new one.

How: the complete new folder is staged as a hidden sibling (.NAME.staging-PID), its files and
the folder itself fsynced, then swapped in with one atomic call, Linux renameat2(RENAME_EXCHANGE):
the target path names the old folder until that call and the new one after it; the old set,
now at the staging path, is then deleted and the parent fsynced. Where RENAME_EXCHANGE is not
available (not Linux, or EINVAL from the filesystem) the fallback is two renames, old aside
(.NAME.old-PID) and new in: a kill between them leaves the target missing for a moment, and the
next write of that folder restores the aside copy before anything else.

Writers of one parent folder take turns (flock on the parent), so any staging or aside sibling
found while holding the lock belongs to a killed writer and is removed (or restored, above).
The swap is made with SIGINT blocked, so Ctrl-C takes effect just after it, never inside it.

The new set is the build's files plus the regular files already in the target that are not the
build's (a user's README in --out): those are carried over into the staging copy. A file the
build writes in some builds but not in this one (a classifier's confusion.png, then a regression
build) is named in `owned` and not carried over, so nothing of an earlier build stays stale. A
target holding a subfolder is refused (an output folder must be the build's own, not build/
or the checkout). A symlinked target is resolved: the folder it names is swapped.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import platform
import re
import shutil
import signal
import stat
import threading
from pathlib import Path
from typing import Iterator

from pipeline.errors import BadInput

RENAME_EXCHANGE = 2
AT_FDCWD = -100
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}
# What the file-by-file writer of earlier versions left when interrupted: .model.json.k3j9.tmp
_OLD_TEMP = re.compile(r"^\..+\.[^.]+\.tmp$")


class OutputError(BadInput, OSError):
    """An output folder cannot be written."""


def write_all(files: dict[Path, bytes], owned: frozenset[str] = frozenset()) -> list[Path]:
    """Writes files, grouped by folder, each folder swapped as a whole (see the module
    docstring), in the order the folders first appear; a file named in owned that this write
    does not replace is removed. Every folder is staged before the
    first swap: a folder that cannot be written stops the build before any output changes.
    The swaps themselves go one folder after the other (the model's, then the report's): a
    kill between two swaps leaves the first folder new and the next one old, each whole."""
    groups: dict[Path, dict[str, bytes]] = {}  # by the folder's real path: one swap per folder
    named: dict[Path, Path] = {}  # the folder as the caller named it, for messages
    for path, content in files.items():
        target = Path(os.path.realpath(Path(path).parent))
        named.setdefault(target, Path(path).parent)
        groups.setdefault(target, {})[Path(path).name] = content
    with contextlib.ExitStack() as stack:
        for parent in sorted({target.parent for target in groups}):  # one order: no deadlock
            stack.enter_context(_locked(parent, next(named[t] for t in groups if t.parent == parent)))
        stages = [stack.enter_context(_staged(named[target], target, contents, owned))
                  for target, contents in groups.items()]
        with _sigint_deferred():
            for stage in stages:
                stage.swap()
    return [Path(path) for path in files]


def recover(folder: Path) -> None:
    """What the next write does first: restores a target a killed fallback swap left missing,
    and removes the staging and aside siblings of killed writers."""
    target = Path(os.path.realpath(folder))
    if target.parent.is_dir():
        with _locked(target.parent, Path(folder)), _sigint_deferred():
            _settle(target)


class _Stage:
    def __init__(self, target: Path, staging: Path) -> None:
        self.target, self.staging = target, staging

    def swap(self) -> None:
        parent = self.target.parent
        try:
            if not self.target.exists():
                os.rename(self.staging, self.target)
            elif not _exchange(self.staging, self.target):
                aside = parent / f".{self.target.name}.old-{os.getpid()}"
                os.rename(self.target, aside)
                os.rename(self.staging, self.target)
            _fsync_dir(parent)
        except OSError as exc:
            raise OutputError(f"{self.target}: cannot replace the folder: {exc.strerror or exc}") from None
        _settle(self.target)
        _fsync_dir(parent)


@contextlib.contextmanager
def _locked(parent: Path, named: Path) -> Iterator[None]:
    """Writers of one parent folder take turns."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        blocker = next((p for p in (parent, *parent.parents) if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is not a folder" if blocker else exc.strerror or exc
        raise OutputError(f"{named}: cannot write output: {reason}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)


@contextlib.contextmanager
def _staged(folder: Path, target: Path, contents: dict[str, bytes], owned: frozenset[str]) -> Iterator[_Stage]:
    """Clears what killed writers left and stages the new folder (the parent is locked); on
    leaving, removes whatever of the staging is still there (all of it when no swap happened)."""
    try:
        _settle(target)
        for name in contents:  # what earlier versions, writing file by file into a shared folder, left
            for leftover in target.parent.glob(f".{name}.*.tmp"):
                leftover.unlink(missing_ok=True)
        staging = target.parent / f".{target.name}.staging-{os.getpid()}"
        try:
            _stage(target, staging, contents, owned)
        except BaseException:
            with _sigint_deferred():
                _settle(target)
            raise
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write output: {exc.strerror or exc}") from None
    try:
        yield _Stage(target, staging)
    finally:
        with _sigint_deferred():
            _settle(target)


def _stage(target: Path, staging: Path, contents: dict[str, bytes], owned: frozenset[str]) -> None:
    carried: list[os.DirEntry] = []
    mode = None
    if target.is_dir():
        mode = stat.S_IMODE(target.stat().st_mode)
        with os.scandir(target) as entries:
            for entry in entries:
                if entry.name in contents or entry.name in owned or _OLD_TEMP.match(entry.name):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    raise OutputError(f"{target}: holds the folder {entry.name}/, which the build does not write; "
                                      "give the output a folder of its own")
                carried.append(entry)
    elif target.exists():
        raise OutputError(f"{target}: cannot write output: not a folder")
    os.mkdir(staging)
    if mode is not None:
        os.chmod(staging, mode)
    for entry in carried:
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), staging / entry.name)
        else:
            shutil.copy2(entry.path, staging / entry.name)
            with open(staging / entry.name, "rb") as copy:
                os.fsync(copy.fileno())
    for name, data in contents.items():
        fd = os.open(staging / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(fd, 0o644)
            out.write(data)
            out.flush()
            os.fsync(fd)
    _fsync_dir(staging)


def _settle(target: Path) -> None:
    """Restores an aside copy of a target that a killed fallback swap left missing, then
    removes every staging and aside sibling of target (the caller holds the parent's lock)."""
    parent = target.parent
    prefix = f".{target.name}."
    siblings = [p for p in parent.iterdir() if p.name.startswith(prefix)
                and re.fullmatch(r"(staging|old)-\d+", p.name[len(prefix):])]
    asides = [p for p in siblings if p.name[len(prefix):].startswith("old-")]
    if not target.exists() and asides:
        newest = max(asides, key=lambda p: p.stat().st_mtime)
        os.rename(newest, target)
        siblings.remove(newest)
        _fsync_dir(parent)
    for path in siblings:
        shutil.rmtree(path, ignore_errors=True)
    if target.is_dir():
        for leftover in target.iterdir():
            if _OLD_TEMP.match(leftover.name) and leftover.is_file():
                leftover.unlink(missing_ok=True)


def _renameat2():
    libc = ctypes.CDLL(None, use_errno=True)
    function = getattr(libc, "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        return function
    number = _SYS_RENAMEAT2.get(platform.machine())
    if number is None:
        return None
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    return lambda *args: syscall(ctypes.c_long(number), *args)


def _exchange(a: Path, b: Path) -> bool:
    """Swaps the two paths atomically; False where the system cannot (then nothing changed)."""
    if platform.system() != "Linux":
        return False
    function = _renameat2()
    if function is None:
        return False
    if function(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), ctypes.c_uint(RENAME_EXCHANGE)) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """SIGINT arriving inside the block takes effect when it ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
