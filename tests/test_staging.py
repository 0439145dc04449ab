"""`_staging.staged`: write beside the target, move into place on success, leave nothing on failure."""

import contextlib
import os

import pytest

from keras_vae.export import _staging


def _tree(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_a_file_appears_only_when_the_block_ends(tmp_path):
    target = tmp_path / "out" / "vae.tflite"
    with _staging.staged(target) as path:
        assert path.name == target.name and path.parent.parent == target.parent
        assert path.parent.name.startswith(".tmp-")
        path.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert _tree(tmp_path / "out") == ["vae.tflite"]  # the staging folder is gone


def test_an_existing_target_is_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "1"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        with _staging.staged({"savedmodel": target, "manifest": tmp_path / "m.json"}):
            raise AssertionError("the block must not run")
    assert _tree(tmp_path) == ["1", "1/old"]


def test_overwrite_replaces_a_folder_whole(tmp_path):
    target = tmp_path / "vae" / "1"
    target.mkdir(parents=True)
    (target / "stale").write_text("old")
    with _staging.staged(target, overwrite=True) as path:
        path.mkdir()
        (path / "saved_model.pb").write_text("new")
    assert _tree(tmp_path / "vae") == ["1", "1/saved_model.pb"]


def test_a_failed_block_leaves_the_targets_and_removes_the_staging(tmp_path):
    kept = tmp_path / "out" / "manifest.json"
    kept.parent.mkdir()
    kept.write_text("old")
    with pytest.raises(RuntimeError, match="check failed"):
        with _staging.staged({"onnx": tmp_path / "out" / "onnx" / "decoder.onnx",
                              "manifest": kept}, overwrite=True) as stage:
            stage["onnx"].write_text("new")
            stage["manifest"].write_text("new")
            raise RuntimeError("check failed")
    assert kept.read_text() == "old"
    assert _tree(tmp_path / "out") == ["manifest.json", "onnx"]  # no root: folders are kept


def test_root_removes_only_the_folders_the_block_created(tmp_path):
    (tmp_path / "keep").mkdir()
    targets = {"savedmodel": tmp_path / "keep" / "out" / "savedmodel" / "vae" / "1",
               "tflite": tmp_path / "keep" / "out" / "tflite" / "vae.tflite"}
    with pytest.raises(ValueError):
        with _staging.staged(targets, root=tmp_path) as stage:
            stage["savedmodel"].mkdir()
            stage.scratch.mkdir()
            raise ValueError("bad")
    assert _tree(tmp_path) == ["keep"]


def test_targets_move_in_order_and_the_scratch_stays_behind(tmp_path):
    targets = {"savedmodel": tmp_path / "savedmodel" / "vae" / "1",
               "manifest": tmp_path / "manifest.json"}
    with _staging.staged(targets) as stage:
        assert list(stage) == ["savedmodel", "manifest"]
        stage["savedmodel"].mkdir()
        stage["manifest"].write_text("{}")
        stage.scratch.mkdir()
        (stage.scratch / "tmp").write_text("x")
    assert _tree(tmp_path) == ["manifest.json", "savedmodel", "savedmodel/vae", "savedmodel/vae/1"]


def test_move_into_place_refuses_without_overwrite(tmp_path):
    source, target = tmp_path / "a", tmp_path / "b"
    source.write_text("a")
    target.write_text("b")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _staging.move_into_place(source, target, overwrite=False)
    _staging.move_into_place(source, target, overwrite=True)
    assert target.read_text() == "a" and not source.exists()


def test_a_swap_that_fails_midway_puts_every_old_target_back(tmp_path, monkeypatch):
    """A rename refused mid-swap (full disk, a permission): the old export, whole."""
    out = tmp_path / "out"
    targets = {"model": out / "vae" / "1", "manifest": out / "manifest.json"}
    journal = out / _staging.JOURNAL
    for tag in ("old", "new"):
        if tag == "new":
            real, calls = os.rename, []

            def rename(src, dst):
                calls.append(dst)
                if len(calls) == 3:  # the old ones are aside, the first new one goes in
                    raise OSError(28, "No space left on device")
                return real(src, dst)

            monkeypatch.setattr(os, "rename", rename)
        with pytest.raises(OSError) if tag == "new" else contextlib.nullcontext():
            with _staging.staged(targets, True, journal=journal) as stage:
                stage["model"].mkdir()
                (stage["model"] / "saved_model.pb").write_text(tag)
                stage["manifest"].write_text(tag)
    monkeypatch.undo()
    assert _tree(out) == ["manifest.json", "vae", "vae/1", "vae/1/saved_model.pb"]
    assert (out / "manifest.json").read_text() == "old"
    assert (out / "vae" / "1" / "saved_model.pb").read_text() == "old"
    assert _staging.recover(journal) is None  # rolled back already, journal gone
