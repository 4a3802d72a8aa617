"""write_metrics_json: the record a reader of the results gets."""

import json

import pytest

from fl_embed.evaluation.report import write_metrics_json


def test_json_holds_the_metrics_and_the_run_context(tmp_path):
    path = tmp_path / "new_dir" / "metrics.json"
    write_metrics_json(str(path), {"nmi": 0.5, "recall@1": 0.25}, ks=[1], seed=3)
    assert json.loads(path.read_text()) == {
        "ks": [1],
        "seed": 3,
        "metrics": {"nmi": 0.5, "recall@1": 0.25},
    }


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    write_metrics_json(str(path), {"nmi": 0.5})
    before = path.read_text()
    with pytest.raises(TypeError):
        write_metrics_json(str(path), {"nmi": 0.7}, unserialisable=object())
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
