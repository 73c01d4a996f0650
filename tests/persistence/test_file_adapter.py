"""The file adapter: paths confined to the root, writes staged per transaction, atomic commits."""

from __future__ import annotations

import asyncio
import os

import pytest

from bollydog.adapters.file import FileProtocol, FileUnitOfWork, UnsafePathError
from bollydog.bootstrap import build
from bollydog.config import ModuleRef
from bollydog.errors import BollydogError, ConfigError, HandlerTimeoutError
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from tests.persistence import handlers_file as hf

HANDLERS = "tests.persistence.handlers_file"


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


@pytest.fixture
async def files(root):
    """A connected FileProtocol used outside any handler (each write commits at once)."""
    protocol = FileProtocol(FileUnitOfWork(str(root)))
    await protocol.connect()
    return protocol


@pytest.fixture
async def hub(root):
    hf.SEEN.clear()
    app = AppService.create_from(domain="files", handlers=[HANDLERS], protocol=FileProtocol(FileUnitOfWork(root)))
    async with HubService(apps=[app]) as hub:
        yield hub


# -- paths ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["../escape.txt", "a/../../escape.txt", "a/../b.txt", "/etc/passwd", "\\..\\escape.txt", "C:/x.txt", "", ".", "a/./..", "nul\x00.txt"],
)
async def test_paths_outside_the_root_are_refused(files, path):
    for call in (files.read(path), files.write(path, "x"), files.delete(path), files.exists(path)):
        with pytest.raises(UnsafePathError) as info:
            await call
        assert isinstance(info.value, ValueError) and isinstance(info.value, BollydogError)
    assert await files.list() == []


async def test_symbolic_links_out_of_the_root_are_refused(files, root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, root / "door")
    os.symlink(outside / "secret.txt", root / "leak.txt")
    for path in ("door/secret.txt", "leak.txt", "door/new.txt"):
        with pytest.raises(UnsafePathError, match="symbolic link"):
            await files.read(path)
        with pytest.raises(UnsafePathError, match="symbolic link"):
            await files.write(path, "overwritten")
    assert (outside / "secret.txt").read_text() == "secret"
    assert not (outside / "new.txt").exists()
    assert await files.list() == []  # links out of the root are not listed
    with pytest.raises(UnsafePathError):
        await files.list("../")
    # A link that stays inside the root is fine.
    (root / "real").mkdir()
    os.symlink(root / "real", root / "alias")
    await files.write("alias/inside.txt", "ok")
    assert (root / "real" / "inside.txt").read_text() == "ok"


# -- outside a handler ------------------------------------------------------------------------------


async def test_outside_a_handler_each_write_commits_at_once(files, root):
    await files.write("notes/a.txt", "alpha")
    await files.write("notes/sub/b.txt", "beta")
    await files.write("c.txt", "gamma")
    assert (root / "notes" / "a.txt").read_text() == "alpha"
    assert await files.read("notes/a.txt") == "alpha"
    assert await files.read("./notes//a.txt") == "alpha"  # normalised
    assert await files.read("missing.txt") is None
    assert await files.exists("c.txt") and not await files.exists("notes")
    assert await files.list() == ["c.txt", "notes/a.txt", "notes/sub/b.txt"]
    assert await files.list("notes/") == ["notes/a.txt", "notes/sub/b.txt"]
    assert await files.delete("c.txt") is True
    assert await files.delete("c.txt") is False
    assert not (root / "c.txt").exists()
    assert hf.leftovers(root) == []


async def test_text_round_trips_exactly(files):
    text = "line one\r\nline two\nünïcødé ✓\n\n"
    await files.write("t.txt", text)
    assert await files.read("t.txt") == text
    with pytest.raises(TypeError):
        await files.write("t.txt", b"bytes")


async def test_permissions_follow_the_umask_and_are_kept_on_replace(files, root):
    mask = os.umask(0o022)
    os.umask(mask)
    await files.write("new.txt", "x")
    assert (root / "new.txt").stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    os.chmod(root / "new.txt", 0o640)
    await files.write("new.txt", "y")
    assert (root / "new.txt").stat().st_mode & 0o777 == 0o640


async def test_connect_creates_the_root_or_refuses_a_file(tmp_path):
    uow = FileUnitOfWork(tmp_path / "deep" / "root")
    await uow.connect()
    assert (tmp_path / "deep" / "root").is_dir()
    (tmp_path / "plain").write_text("")
    with pytest.raises(ConfigError, match="cannot be created"):
        await FileUnitOfWork(tmp_path / "plain").connect()
    with pytest.raises(ConfigError, match="not a folder"):
        await FileUnitOfWork(tmp_path / "plain", create=False).connect()
    with pytest.raises(ConfigError, match="not a folder"):
        await FileUnitOfWork(tmp_path / "absent", create=False).connect()


# -- through the hub --------------------------------------------------------------------------------


async def test_writes_are_staged_until_the_handler_commits(hub, root):
    (root / "old.txt").write_text("old")
    seen = await hub.execute(hf.WriteFiles(files={"new.txt": "new", "old.txt": None, "d/e.txt": "e"}))
    assert seen["deleted old.txt"] is True
    assert seen["new.txt"] == {"read": "new", "exists": True, "on_disk": None}
    assert seen["old.txt"] == {"read": None, "exists": False, "on_disk": "old"}
    assert seen["listed"] == ["d/e.txt", "new.txt"]
    assert (root / "new.txt").read_text() == "new" and (root / "d" / "e.txt").read_text() == "e"
    assert not (root / "old.txt").exists()
    assert await hub.execute(hf.ListFiles()) == ["d/e.txt", "new.txt"]
    assert hf.leftovers(root) == []
    assert await hub.drain(5)
    assert hf.SEEN == ["d/e.txt", "new.txt", "old.txt"]  # published after the commit


async def test_rollback_on_exception_discards_every_staged_change(hub, root):
    (root / "keep.txt").write_text("original")
    with pytest.raises(hf.Boom):
        await hub.execute(hf.WriteFiles(files={"keep.txt": "changed", "new.txt": "new"}, fail=True))
    with pytest.raises(hf.Boom):
        await hub.execute(hf.WriteFiles(files={"keep.txt": None}, fail=True))
    assert (root / "keep.txt").read_text() == "original"
    assert await hub.execute(hf.ListFiles()) == ["keep.txt"]
    assert await hub.drain(5)
    assert hf.SEEN == []  # no event after a rollback
    assert hf.leftovers(root) == []


async def test_rollback_when_the_handler_times_out(hub, root):
    with pytest.raises(HandlerTimeoutError):
        await hub.execute(hf.WriteFiles(files={"slow.txt": "partial"}, sleep=5, expire_time=0.05))
    assert not (root / "slow.txt").exists()
    assert await hub.execute(hf.ReadFile(path="slow.txt")) is None
    assert await hub.drain(5)
    assert hf.SEEN == []


async def test_a_commit_that_cannot_be_prepared_applies_nothing(hub, root):
    (root / "a").write_text("a file, not a folder")
    with pytest.raises(OSError):
        await hub.execute(hf.WriteFiles(files={"first.txt": "1", "a/b.txt": "2"}))
    assert not (root / "first.txt").exists()
    assert (root / "a").read_text() == "a file, not a folder"
    assert hf.leftovers(root) == []
    assert await hub.drain(5)
    assert hf.SEEN == []


async def test_path_errors_fail_the_handler_before_anything_is_written(hub, root):
    with pytest.raises(UnsafePathError):
        await hub.execute(hf.WriteFiles(files={"fine.txt": "1", "../bad.txt": "2"}))
    assert await hub.execute(hf.ListFiles()) == []
    assert not (root.parent / "bad.txt").exists()


async def test_concurrent_handlers_lose_no_write(hub, root):
    commands = [hf.WriteFiles(files={f"c/{i:03d}.txt": str(i), "shared.txt": str(i)}) for i in range(100)]
    await asyncio.gather(*(hub.execute(c) for c in commands))
    listed = await hub.execute(hf.ListFiles(prefix="c/"))
    assert listed == [f"c/{i:03d}.txt" for i in range(100)]
    assert all((root / p).read_text() == str(int(p[2:5])) for p in listed)
    assert (root / "shared.txt").read_text() in {str(i) for i in range(100)}  # last commit wins
    assert hf.leftovers(root) == []


async def test_config_wires_the_file_adapter(tmp_path):
    config = {
        "notes": {
            "handlers": [HANDLERS],
            "unit_of_work": {"module": ModuleRef("bollydog.adapters.file.FileUnitOfWork"), "root": str(tmp_path / "cfg"), "fsync": False},
            "protocol": {"module": ModuleRef("bollydog.adapters.file.FileProtocol")},
        }
    }
    hub = build(config).hub
    async with hub:
        await hub.execute(hf.WriteFiles(files={"x.txt": "from config"}))
    assert (tmp_path / "cfg" / "x.txt").read_text() == "from config"
    # Shorthand: the protocol section alone carries the unit of work's options.
    shorthand = {"protocol": {"module": ModuleRef("bollydog.adapters.file.FileProtocol"), "root": str(tmp_path / "short")}}
    hub = build({"notes": {"handlers": [HANDLERS], **shorthand}}).hub
    async with hub:
        await hub.execute(hf.WriteFiles(files={"y.txt": "shorthand"}))
    assert (tmp_path / "short" / "y.txt").read_text() == "shorthand"
    with pytest.raises(ConfigError, match="root"):
        build({"notes": {"protocol": {"module": ModuleRef("bollydog.adapters.file.FileProtocol")}}})


async def test_a_folder_in_the_way_applies_nothing_and_leaves_no_temporary_file(files, root):
    # The folder makes os.replace fail; found only at the second phase, "a.txt" used to be
    # written already (half a transaction) and the temporary file of "b" left behind.
    (root / "b").mkdir()
    async with files.unit_of_work.scope():
        await files.write("a.txt", "new a")
        await files.write("b", "file b")
        with pytest.raises(IsADirectoryError):
            await files.unit_of_work.commit(await files.unit_of_work.transaction())
    assert sorted(os.listdir(root)) == ["b"]
    assert os.listdir(root / "b") == []
