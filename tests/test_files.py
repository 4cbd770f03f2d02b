"""The home is private: created 0700, every file nbplayground writes in it 0600, and a home found open
(an older nbplayground made it 0755 with a 0644 database) is tightened once, with one notice."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import duckdb
import pytest

import nbplayground as nbp
from nbplayground import config
from nbplayground.storage import db, history

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes say who may read only on POSIX")
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(autouse=True)
def usual_umask():
    """The common umask (022): files would be 0644 and folders 0755 if nbplayground did nothing."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): mode(p) for p in [root, *root.rglob("*")]}


def _assert_private(home: Path, found: dict[str, int]) -> None:
    for name, m in found.items():
        expected = 0o700 if (home / name).is_dir() else 0o600
        assert m == expected, f"{name} is {m:o}, expected {expected:o}"


SPILLER = """
import sys; sys.path.insert(0, {src!r})
from nbplayground.core.types import RunResult
from nbplayground.storage import history
history.record(RunResult(id="spilled-0" + "0" * 23, model="mock/echo", text="spilled"))
"""


def test_a_fresh_home_is_0700_and_every_file_in_it_0600(tmp_path, monkeypatch):
    home = tmp_path / "fresh" / "home"
    monkeypatch.setenv("NBPLAYGROUND_HOME", str(home))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a home nbplayground made itself needs no notice
        nbp.run("hello", model="mock/echo")
        nbp.run("a lighthouse", model="mock/image", kind="image")
        nbp.run(model="mock/tts", kind="speech", input="hello")
        nbp.prompts.save("a/b", content="hi {{x}}")
        assert history.flush()
    _assert_private(home, modes(home))
    # a process that cannot reach the store leaves its runs in its journal at exit
    (home / db.DB_FILE).rename(home / "moved.duckdb")
    (home / db.DB_FILE).mkdir()
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", SPILLER.format(src=SRC)],
                          capture_output=True, text=True, timeout=120, env={**os.environ})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [left] = [p for p in (home / "journal").glob("*.jsonl") if not p.name.startswith(f"{os.getpid()}-")]
    assert mode(left) == 0o600 and mode(home / "journal") == 0o700
    (home / db.DB_FILE).rmdir()
    (home / "moved.duckdb").rename(home / db.DB_FILE)
    # a line the store cannot take goes to quarantine/
    (home / "pending").mkdir(mode=0o700)
    (home / "pending" / "1-old.jsonl").write_text('{"no": "id"}\n')
    os.chmod(home / "pending" / "1-old.jsonl", 0o600)
    history.record(nbp.RunResult(id="own-run", model="mock/echo"))  # its journal is removed at reset
    with pytest.warns(RuntimeWarning, match="quarantined"):
        history.reset_for_tests()  # every connection closed: what stays on disk is all there is

    found = modes(home)
    assert {db.DB_FILE, db.LOCK_FILE, "media", "journal", "quarantine"} <= {n.split("/")[0] for n in found}
    assert len([n for n in found if n.startswith("media/")]) == 2  # the image and the audio
    assert not [n for n in found if n.startswith("journal/")]  # the child's was taken in, ours removed
    assert len([n for n in found if n.startswith("quarantine/")]) == 1
    _assert_private(home, found)
    assert nbp.get_run("spilled-0")  # the writer took the child's run in


def test_an_open_home_is_tightened_once_with_one_notice(tmp_path, monkeypatch):
    home = tmp_path / "old-home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    con = duckdb.connect(str(home / db.DB_FILE))
    con.execute("CREATE TABLE leftover (x INTEGER)")  # a database an old version left, migrated below
    con.close()
    (home / "media").mkdir(mode=0o755)
    (home / "media" / "old.png").write_bytes(b"png")
    (home / "config.toml").write_text('default_model = "mock/echo"\n')
    for path in (home / db.DB_FILE, home / "media" / "old.png", home / "config.toml"):
        os.chmod(path, 0o644)
    os.chmod(home / "media", 0o755)
    monkeypatch.setenv("NBPLAYGROUND_HOME", str(home))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nbp.run("hello", model="mock/echo")
        assert history.flush()
        nbp.history()
        config.home()
    notices = [w for w in caught if "open to other users" in str(w.message)]
    assert len(notices) == 1, [str(w.message) for w in caught]
    message = str(notices[0].message)
    assert str(home) in message and "\n" not in message
    assert mode(home) == 0o700 and mode(home / "media") == 0o700
    for path in (home / db.DB_FILE, home / "media" / "old.png", home / "config.toml", home / db.LOCK_FILE):
        assert mode(path) == 0o600, path


def test_the_home_is_checked_once_per_process_not_on_every_call(tmp_path, monkeypatch):
    calls = []
    real = config.make_private
    monkeypatch.setattr(config, "make_private", lambda root: calls.append(root) or real(root))
    monkeypatch.setenv("NBPLAYGROUND_HOME", str(tmp_path / "h"))
    for _ in range(50):
        config.home()
    nbp.run("hi", model="mock/echo")
    assert history.flush()
    assert calls == [tmp_path / "h"]
