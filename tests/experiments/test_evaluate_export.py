"""Tests of experiments/evaluate.py and experiments/export.py on a tiny trained run."""

import json
import os

import numpy as np
import pytest

from experiments import run_dir
from fl_embed import export
from tests.experiments.conftest import run_module


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _recorded(out):
    return _read_json(os.path.join(out, "metrics.json"))["metrics"]


def _evaluate(tmp_path, data_dir, *args):
    """(the finished process, the JSON record it wrote) of experiments.evaluate with `args`."""
    output = str(tmp_path / "metrics.json")
    result = run_module(
        "experiments.evaluate",
        *args,
        f"--data_dir={data_dir}",
        f"--output_json={output}",
    )
    return result, _read_json(output)


def test_evaluate_a_checkpoint_gives_the_trainers_metrics(
    tiny_run, glyph_data_dir, tmp_path
):
    out = tiny_run[0]
    result, record = _evaluate(tmp_path, glyph_data_dir, f"--checkpoint={out}")
    assert record["checkpoint"].endswith("ckpt-2") and record["dataset"] == "glyphs"
    assert record["metrics"] == pytest.approx(_recorded(out), abs=1e-4)
    assert "NMI" in result.stdout and "recall@8" in result.stdout


def test_evaluate_a_saved_model(tiny_run, glyph_data_dir, tmp_path):
    out = tiny_run[0]
    _, record = _evaluate(
        tmp_path, glyph_data_dir, f"--saved_model={out}/export", "--dataset=glyphs"
    )
    assert record["metrics"] == pytest.approx(_recorded(out), abs=1e-3)


def test_evaluate_refuses_a_directory_without_a_run(tmp_path):
    result = run_module("experiments.evaluate", f"--checkpoint={tmp_path}", check=False)
    assert result.returncode != 0 and "is not a training run" in result.stderr


def test_export_an_intermediate_checkpoint(tiny_run, glyph_data_dir, tmp_path):
    out = tiny_run[0]
    export_dir = str(tmp_path / "export1")
    run_module(
        "experiments.export",
        f"--checkpoint={out}/checkpoints/ckpt-1",
        f"--export_dir={export_dir}",
    )
    _, model, _ = run_dir.load_run(f"{out}/checkpoints/ckpt-1")
    images = (
        np.random.default_rng(0)
        .integers(0, 256, size=(4, 32, 32, 1))
        .astype(np.float32)
    )
    expected = model(images / 255.0, training=False).numpy()
    got = export.load_embedder(export_dir)(images / 255.0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    final = export.load_embedder(os.path.join(out, "export"))(images / 255.0)
    assert not np.allclose(final, got, atol=1e-6)
