"""Bad flags and paths to every command line: a usage error or an "error: ..." line, never a
traceback (issue 14). Each command line runs all its cases in one process
(`tests/experiments/cli_cases.py`); BUILD_NOTES' "Bad inputs" table lists the same rows.

Read-only cases run as a user without root's override of permission bits: as root the driver
drops to `nobody` once the command line is imported; as another user they run as that user."""

import json
import os
import pathlib
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.experiments.conftest import REPO

USAGE, ERROR, RAN = "usage error", "error", "ran"
# {command line: {case: (arguments, outcome, regex of the message)}}; {tmp}, {file}, {run},
# {data_dir} and {readonly} are filled in by the fixture.
CASES = {
    "experiments.train": {
        "no --output_dir": ([], USAGE, "--output_dir must have a value"),
        "empty --output_dir": (["--output_dir="], ERROR, "--output_dir is empty"),
        "--output_dir a file": (["--output_dir={file}"], ERROR, "is a file"),
        "--output_dir under a file": (
            ["--output_dir={file}/run"],
            ERROR,
            "is not writable: Not a directory",
        ),
        "unknown flag": (
            ["--output_dir={tmp}/r", "--foo=1"],
            USAGE,
            "Unknown command line flag 'foo'",
        ),
        "missing flagfile": (
            ["--flagfile={tmp}/none.txt"],
            USAGE,
            "Unable to open flagfile",
        ),
        "unknown loss": (
            ["--output_dir={tmp}/r", "--loss=contrastive"],
            USAGE,
            "should be one of",
        ),
        "unknown data set": (
            ["--output_dir={tmp}/r", "--dataset=mnist"],
            USAGE,
            "should be one of",
        ),
        "unknown backbone": (
            ["--output_dir={tmp}/r", "--backbone=resnet"],
            USAGE,
            "should be one of",
        ),
        "unknown strategy": (
            ["--output_dir={tmp}/r", "--strategy=tpu"],
            USAGE,
            "should be one of",
        ),
        "unknown inference": (
            ["--output_dir={tmp}/r", "--cluster_inference=gpu"],
            USAGE,
            "should be one of",
        ),
        "batch size not a number": (
            ["--output_dir={tmp}/r", "--batch_size=a"],
            USAGE,
            "invalid literal",
        ),
        "batch size 1": (["--output_dir={tmp}/r", "--batch_size=1"], USAGE, ">= 2"),
        "0 steps": (
            ["--output_dir={tmp}/r", "--train_steps=0"],
            USAGE,
            "not a positive integer",
        ),
        "negative learning rate": (
            ["--output_dir={tmp}/r", "--learning_rate=-1"],
            USAGE,
            "non-negative",
        ),
        "negative gamma": (
            ["--output_dir={tmp}/r", "--margin_multiplier=-1"],
            USAGE,
            "non-negative",
        ),
        "NaN decay rate": (
            ["--output_dir={tmp}/r", "--margin_decay_rate=nan"],
            USAGE,
            "must be a finite number",
        ),
        "NaN class ratio": (
            ["--output_dir={tmp}/r", "--classes_per_batch_ratio=nan"],
            USAGE,
            "must be a finite number",
        ),
        "ratio giving 1 class": (
            ["--output_dir={tmp}/r", "--classes_per_batch_ratio=0.001"],
            USAGE,
            "class",
        ),
        "0 embedding dims": (
            ["--output_dir={tmp}/r", "--embedding_dim=0"],
            USAGE,
            "positive",
        ),
        "checkpoint every 0": (
            ["--output_dir={tmp}/r", "--checkpoint_every=0"],
            USAGE,
            "positive",
        ),
        "log every 0": (["--output_dir={tmp}/r", "--log_every=0"], USAGE, "positive"),
        "negative eval_every": (
            ["--output_dir={tmp}/r", "--eval_every=-1"],
            USAGE,
            "non-negative",
        ),
        "keep 0 exports": (
            ["--output_dir={tmp}/r", "--keep_exports=0"],
            USAGE,
            "positive",
        ),
        "eval batch 0": (
            ["--output_dir={tmp}/r", "--eval_batch_size=0"],
            USAGE,
            "positive",
        ),
        "--data_dir a file": (
            ["--output_dir={tmp}/r1", "--data_dir={file}"],
            ERROR,
            "data_dir .* is a file",
        ),
        "missing weights file": (
            ["--output_dir={tmp}/r2", "--weights={tmp}/none.h5"],
            ERROR,
            "--weights=.*none.h5.* does not exist",
        ),
        "NaN learning rate": (
            [
                "--output_dir={tmp}/r3",
                "--learning_rate=nan",
                "--train_steps=1",
                "--data_dir={data_dir}",
                "--batch_size=16",
                "--noeval_at_start",
                "--noshow_floor",
            ],
            USAGE,
            "--learning_rate must be a finite number",
        ),
        "another run's directory": (
            ["--output_dir={run}", "--loss=triplet"],
            ERROR,
            "stored",
        ),
    },
    "experiments.evaluate": {
        "neither --checkpoint nor --saved_model": ([], USAGE, "exactly one of"),
        "both": (
            ["--checkpoint={run}", "--saved_model={run}/export"],
            USAGE,
            "exactly one of",
        ),
        "--saved_model without --dataset": (
            ["--saved_model={run}/export"],
            USAGE,
            "needs --dataset",
        ),
        "unknown split": (
            ["--checkpoint={run}", "--split=val"],
            USAGE,
            "should be one of",
        ),
        "bad --ks": (["--checkpoint={run}", "--ks=0,a"], USAGE, "positive integers"),
        "batch size 0": (["--checkpoint={run}", "--batch_size=0"], USAGE, "positive"),
        "negative seed": (["--checkpoint={run}", "--seed=-1"], USAGE, "in the range"),
        "missing checkpoint": (["--checkpoint={tmp}/none"], ERROR, "none"),
        "a directory without a run": (
            ["--checkpoint={tmp}"],
            ERROR,
            "is not a training run",
        ),
        "a file as checkpoint": (["--checkpoint={file}"], ERROR, "afile"),
        "missing SavedModel": (
            ["--saved_model={tmp}/none", "--dataset=glyphs"],
            ERROR,
            "No SavedModel",
        ),
        "--output_json a directory": (
            ["--checkpoint={run}", "--output_json={tmp}"],
            ERROR,
            "--output_json .* is a directory",
        ),
        "--data_dir a file": (
            ["--checkpoint={run}", "--data_dir={file}"],
            ERROR,
            "is a file",
        ),
    },
    "experiments.export": {
        "no --checkpoint": ([], USAGE, "--checkpoint must have a value"),
        "missing checkpoint": (["--checkpoint={tmp}/none"], ERROR, "none"),
        "a directory without a run": (
            ["--checkpoint={tmp}"],
            ERROR,
            "is not a training run",
        ),
        "--export_dir a file": (
            ["--checkpoint={run}", "--export_dir={file}"],
            ERROR,
            "afile",
        ),
        "an intermediate checkpoint": (
            ["--checkpoint={run}/checkpoints/ckpt-1", "--export_dir={tmp}/export1"],
            RAN,
            "",
        ),
        "again: the next version": (
            ["--checkpoint={run}/checkpoints/ckpt-1", "--export_dir={tmp}/export1"],
            RAN,
            "",
        ),
    },
    "experiments.compare": {
        "no --output_dir": ([], USAGE, "--output_dir must have a value"),
        "unknown loss": (
            ["--output_dir={tmp}/c", "--losses=triplet,contrastive"],
            USAGE,
            "subset of",
        ),
        "bad seeds": (
            ["--output_dir={tmp}/c", "--seeds=0,-1"],
            USAGE,
            "non-negative integers",
        ),
        "0 steps": (["--output_dir={tmp}/c", "--train_steps=0"], USAGE, "positive"),
        "--output_dir a file": (["--output_dir={file}"], ERROR, "is a file"),
        "too small a validation share": (
            ["--output_dir={tmp}/c", "--validation_fraction=0.001"],
            ERROR,
            "each needs at least 2",
        ),
        "negative trials": (
            ["--output_dir={tmp}/c", "--tune_trials=-1"],
            USAGE,
            "non-negative",
        ),
        "unknown data set": (
            ["--output_dir={tmp}/c", "--dataset=mnist"],
            USAGE,
            "should be one of",
        ),
    },
}
# Run as a user whose permission bits hold (see the module docstring).
READ_ONLY_CASES = {
    "experiments.train": {
        "--output_dir under a read-only directory": (
            ["--output_dir={readonly}/run"],
            ERROR,
            "is not writable: Permission denied",
        ),
        "a read-only stored run": (["--output_dir={readonly_run}"], ERROR, "not writable: Permission denied"),
    },
    "experiments.export": {
        "--export_dir under a read-only directory": (
            ["--checkpoint={readonly_run}", "--export_dir={readonly}/export"],
            ERROR,
            "Permission denied",
        ),
    },
    "experiments.evaluate": {
        "--output_json under a read-only directory": (
            ["--saved_model={readonly_run}/export", "--dataset=glyphs", "--data_dir={data_dir}",
             "--output_json={readonly}/m.json"],
            ERROR,
            "cannot write .*Permission denied",
        ),
        "glyphs not prepared and --data_dir read-only": (
            ["--saved_model={readonly_run}/export", "--dataset=glyphs", "--data_dir={readonly}",
             "--output_json={tmp}/m.json"],
            ERROR,
            "cannot prepare the .* in data_dir .*Permission denied",
        ),
    },
}  # fmt: skip


def _drive(module, cases, paths, tmp_path, uid=None):
    filled = {
        name: [arg.format(**paths) for arg in args]
        for name, (args, _, _) in cases.items()
    }
    cases_file, results_file = tmp_path / f"{module}.json", tmp_path / f"{module}.out"
    cases_file.write_text(json.dumps(filled))
    extra = [] if uid is None else [str(uid)]
    subprocess.run(
        [sys.executable, "-m", "tests.experiments.cli_cases", module, str(cases_file),
         str(results_file), *extra],
        check=True, cwd=REPO, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    return json.loads(results_file.read_text())


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_run, glyph_data_dir):
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "afile").write_text("x")
    run = str(tmp / "run")
    shutil.copytree(tiny_run[0], run)
    return {
        "tmp": str(tmp),
        "file": str(tmp / "afile"),
        "run": run,
        "data_dir": glyph_data_dir,
    }


@pytest.fixture(scope="module")
def results(paths, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_results")
    return {
        module: _drive(module, cases, paths, out) for module, cases in CASES.items()
    }


@pytest.mark.parametrize(
    "module, case",
    [(module, case) for module, cases in CASES.items() for case in cases],
)
def test_command_line_input(results, module, case):
    _, expected, match = CASES[module][case]
    outcome, message = results[module][case]
    assert outcome == expected, message
    assert re.search(match, message), message


def _read_only_user() -> int | None:
    """The uid the read-only cases run as: `nobody` when root, else this user (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("running as root and there is no 'nobody' user to drop to")


def _set_modes(path, directories: int, files: int) -> None:
    for root, _, names in os.walk(path):
        for name in names:
            os.chmod(os.path.join(root, name), files)
    for root, _, _ in os.walk(path, topdown=False):
        os.chmod(root, directories)


@pytest.fixture(scope="module")
def read_only_results(paths):
    uid = _read_only_user()
    # Outside pytest's own temporary folder, which only its owner may enter.
    base = tempfile.mkdtemp(prefix="fl_embed_read_only_")
    os.chmod(base, 0o755)
    filled = {
        name: os.path.join(base, name)
        for name in ("readonly", "readonly_run", "tmp", "data_dir")
    }
    os.mkdir(filled["readonly"])
    shutil.copytree(paths["run"], filled["readonly_run"])
    shutil.copytree(paths["data_dir"], filled["data_dir"])
    os.mkdir(filled["tmp"])
    os.chmod(filled["tmp"], 0o777)
    _set_modes(filled["data_dir"], 0o777, 0o666)  # TFDS may write next to what it reads
    _set_modes(filled["readonly"], 0o555, 0o444)
    _set_modes(filled["readonly_run"], 0o555, 0o444)
    try:
        return {
            module: _drive(module, cases, filled, pathlib.Path(base), uid)
            for module, cases in READ_ONLY_CASES.items()
        }
    finally:
        for root, _, _ in os.walk(base):
            os.chmod(root, 0o755)
        shutil.rmtree(base)


@pytest.mark.parametrize(
    "module, case",
    [(module, case) for module, cases in READ_ONLY_CASES.items() for case in cases],
)
def test_read_only_input_as_a_user_without_root_override(
    read_only_results, module, case
):
    _, expected, match = READ_ONLY_CASES[module][case]
    outcome, message = read_only_results[module][case]
    assert outcome == expected, message
    assert re.search(match, message), message
