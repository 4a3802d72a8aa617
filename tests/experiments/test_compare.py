"""experiments/compare.py end to end at a tiny budget (one loss, 2 trials, 2 steps, 2 seeds: the
real trainer runs, the outputs, the validation classes, resuming), and its significance lines."""

import json
import os

import pytest

import data_prep
from tests.experiments.conftest import run_module

ARGS = [
    "--losses=npairs",
    "--tune_trials=2",
    "--seeds=0,1",
    "--train_steps=2",
    "--notsne",
]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("compare"))
    result = run_module("experiments.compare", *ARGS, f"--output_dir={out}")
    return out, result


def test_the_outputs_hold_both_tables_every_trial_and_the_commands(compared):
    out, _ = compared
    for name in (
        "compare.md",
        "tuning.json",
        "commands.txt",
        "tuning.png",
        "tuning.db",
    ):
        assert os.path.isfile(os.path.join(out, name)), name
    with open(os.path.join(out, "compare.md")) as f:
        text = f.read()
    assert text.index("## Tuned") < text.index("## Untuned")
    assert "MAP@R" in text and "| Npairs |" in text
    with open(os.path.join(out, "tuning.json")) as f:
        record = json.load(f)
    fit, validation = data_prep.validation_split("glyphs", 0.25)
    assert record["validation_classes"] == validation.tolist()
    assert record["fit_classes"] == fit.tolist()
    study = record["losses"]["npairs"]
    assert [t["number"] for t in study["trials"]] == [0, 1]
    assert study["trials"][0]["params"] == {"learning_rate": 1e-3, "reg_lambda": 0.002}
    assert set(study["search_space"]) == {"learning_rate", "reg_lambda"}
    assert study["chosen"]["params"] in [t["params"] for t in study["trials"]]
    with open(os.path.join(out, "commands.txt")) as f:
        commands = f.read().splitlines()
    trials = [c for c in commands if "--validation_fraction=0.25" in c]
    assert len(trials) == 2 and all("--noexport" in c for c in commands)
    # The tuned runs train the chosen setting on every train class and evaluate on the test split.
    finals = [c for c in commands if "--validation_fraction" not in c]
    chosen = record["losses"]["npairs"]["chosen"]["params"]
    assert any(f"--reg_lambda={chosen['reg_lambda']}" in c for c in finals)


def test_trials_are_scored_on_the_validation_classes_and_finals_on_the_test_split(
    compared,
):
    out, _ = compared
    for root, _, files in os.walk(out):
        if "metrics.json" not in files:
            continue
        with open(os.path.join(root, "metrics.json")) as f:
            metrics = json.load(f)
        assert metrics["validation_fraction"] == (0.25 if "/tune/" in root else 0.0)
        with open(root + ".log") as f:
            log = f.read()
        expected = "the 20 validation classes" if "/tune/" in root else "the test split"
        assert f"eval at step 2 on {expected}" in log


def test_a_rerun_reuses_every_finished_trial_and_run(compared):
    out, _ = compared
    result = run_module("experiments.compare", *ARGS, f"--output_dir={out}")
    assert "0 runs trained" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--losses=triplet,contrastive", "--losses must be"),
        ("--validation_fraction=0.001", "at least 2"),
    ],
)
def test_bad_flags_are_clear_errors(tmp_path, flag, message):
    result = run_module(
        "experiments.compare", flag, f"--output_dir={tmp_path}", check=False
    )
    assert result.returncode != 0 and message in result.stderr


def test_significance_lines_give_welchs_test_for_every_pair():
    # Not through experiments.compare: its flags clash with the trainer's in one process.
    from experiments.reporting import significance_lines

    def runs(*map_at_r):
        return [{"map@r": v, "nmi": 0.8} for v in map_at_r]

    results = {
        "A": runs(0.50, 0.52, 0.51),
        "B": runs(0.40, 0.41, 0.42),
        "C": runs(0.50, 0.53, 0.50),
    }
    lines = significance_lines(results, 0.05)
    assert "6 tests" in lines[0] and "p < 0.0083" in lines[0]
    pairs = [line for line in lines if line.startswith("- ")]
    assert [line.split(":")[0] for line in pairs] == [
        "- A vs B",
        "- A vs C",
        "- B vs C",
    ]
    assert "MAP@R +10.00 points" in pairs[0] and "(p = " in pairs[0]
    assert pairs[0].split(";")[0].endswith(", significant)")
    assert "not significant" in pairs[1].split(";")[0]
    # Equal constant NMI on both sides: no difference, p = 1.
    assert "NMI +0.00 points (p = 1, not significant)" in pairs[0]
    one_seed = significance_lines({"A": runs(0.5), "B": runs(0.4)}, 0.05)
    assert "fewer than 2 seeds, not tested" in one_seed[-1]
