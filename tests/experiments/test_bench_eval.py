"""experiments/bench_eval on a tiny set: every path's row and identical metrics, or a clear stop."""

from tests.experiments.conftest import run_module


def test_tiny_run_times_every_path_and_finds_them_identical():
    result = run_module(
        "experiments.bench_eval",
        "--num_items=600",
        "--num_classes=150",
        "--ks=1,10,100",
        "--knn_backends=numpy",
    )
    out = result.stdout
    for stage in (
        "retrieval, ranks (new)",
        "retrieval, ranks, 1 worker (old)",
        "retrieval, kNN numpy (old, k=100)",
        "k-means (k=150)",
        "evaluate() (ranks)",
    ):
        assert stage in out, out
    assert "identical retrieval metrics on every path" in out


def test_too_few_items_for_the_classes_is_a_usage_error():
    result = run_module(
        "experiments.bench_eval", "--num_items=10", "--num_classes=6", check=False
    )
    assert result.returncode != 0
    assert "--num_items must be at least twice --num_classes" in result.stderr
    assert "Traceback" not in result.stderr
