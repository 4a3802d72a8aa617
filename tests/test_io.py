"""Tests of fl_embed.io: a file is replaced whole or not at all."""

import os

import pytest

from fl_embed.io import atomic_write_text


def test_writes_the_text_and_creates_the_parent(tmp_path):
    path = tmp_path / "new" / "file.txt"
    atomic_write_text(str(path), "one\n")
    assert path.read_text() == "one\n"
    atomic_write_text(str(path), "two\n")
    assert path.read_text() == "two\n"
    assert os.listdir(path.parent) == ["file.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "file.txt"
    atomic_write_text(str(path), "old\n")
    with pytest.raises(TypeError):
        atomic_write_text(str(path), b"bytes are not text")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["file.txt"]
