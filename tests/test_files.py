"""Tests of course_lib._files.atomic_write: the whole new file or the old one, never half."""

from __future__ import annotations

import gzip
import os
import pathlib

import pytest

from course_lib import data
from course_lib._files import atomic_write


def test_atomic_write_writes_through_a_temp_file_next_to_the_target(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "sub" / "out.txt"  # the folder does not exist yet
    seen: list[pathlib.Path] = []

    def write(tmp: pathlib.Path) -> None:
        seen.append(tmp)
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new", encoding="utf-8")

    assert atomic_write(target, write) == target
    assert target.read_text(encoding="utf-8") == "new"
    assert not seen[0].exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_atomic_write_replaces_an_existing_file(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    atomic_write(str(target), lambda tmp: tmp.write_text("new", encoding="utf-8"), fsync=False)
    assert target.read_text(encoding="utf-8") == "new"


@pytest.mark.parametrize("error", [OSError("disk full"), ValueError("bad data"), KeyboardInterrupt()])
def test_a_failed_write_removes_the_temp_file_and_leaves_the_target(
    tmp_path: pathlib.Path, error: BaseException
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")

    def write(tmp: pathlib.Path) -> None:
        tmp.write_text("half a fi", encoding="utf-8")
        raise error

    with pytest.raises(type(error)):
        atomic_write(target, write)
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_failed_rename_removes_the_temp_file(tmp_path: pathlib.Path, monkeypatch) -> None:
    target = tmp_path / "out.txt"

    def no_rename(src, dst):
        raise PermissionError("read-only")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(PermissionError):
        atomic_write(target, lambda tmp: tmp.write_text("new", encoding="utf-8"))
    assert list(tmp_path.iterdir()) == []


def test_a_write_that_creates_nothing_is_an_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "out.txt", lambda tmp: None)
    assert list(tmp_path.iterdir()) == []


def test_the_corpus_cache_is_written_atomically(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "cache" / "corpus.json.gz"
    documents = [data.Document(title="T", paragraphs=(data.Paragraph(section="", sentences=("One sentence.",)),))]
    data._write_cache(target, "wiki", documents)
    with gzip.open(target, "rt", encoding="utf-8") as handle:
        assert handle.read()
    assert data._read_cache(target, "wiki") == documents
    assert [p.name for p in target.parent.iterdir()] == ["corpus.json.gz"]
