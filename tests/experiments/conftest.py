"""A tiny glyph training run shared by the command-line tests (seconds, not minutes)."""

import contextlib
import io
import logging
import os
import subprocess
import sys

import pytest
from absl import flags
from absl import logging as absl_logging

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Tiny budget: m = 16 from 4 classes, 2 steps, one checkpoint per step, final evaluation only.
TINY_FLAGS = [
    "--dataset=glyphs",
    "--batch_size=16",
    "--train_steps=2",
    "--checkpoint_every=1",
    "--log_every=1",
    "--eval_every=0",
    "--noeval_at_start",
    "--noshow_floor",
]


def run_module(
    module: str, *args: str, check: bool = True
) -> subprocess.CompletedProcess:
    """Runs `python -m module args` from the repository root, capturing its output."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{module} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return result


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def train_in_process(*args: str) -> tuple[int, str, str]:
    """Runs experiments.train's main here (no new TensorFlow start-up); flags reset afterwards.

    Returns:
      (exit code, log text, stdout).
    """
    from experiments import train

    records, stdout = _Records(), io.StringIO()
    logger = logging.getLogger("absl")
    logger.addHandler(records)
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train", *args])
    absl_logging.set_verbosity(absl_logging.INFO)  # after parsing, which resets it
    code = 0
    try:
        with contextlib.redirect_stdout(stdout):
            train.main([])
    except SystemExit as err:
        code, message = 1, str(err.code)
        records.lines.append(message)
    finally:
        logger.removeHandler(records)
        flags.FLAGS.unparse_flags()
    return code, "\n".join(records.lines), stdout.getvalue()


def train_tiny(out: str, data_dir: str, *args: str) -> tuple[int, str, str]:
    """`train_in_process` of the tiny glyph run into `out`; flags in `args` win over TINY_FLAGS."""
    return train_in_process(
        *TINY_FLAGS, *args, f"--output_dir={out}", f"--data_dir={data_dir}"
    )


@pytest.fixture(scope="session")
def glyph_data_dir(tmp_path_factory) -> str:
    """A TFDS data directory holding the prepared glyph set (prepared by the first run)."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, glyph_data_dir) -> tuple[str, str, str]:
    """(output_dir, log, stdout) of a finished 2-step clustering run, trained in this process."""
    out = str(tmp_path_factory.mktemp("runs") / "tiny")
    code, log, stdout = train_in_process(
        *TINY_FLAGS, f"--output_dir={out}", f"--data_dir={glyph_data_dir}"
    )
    assert code == 0, log[-3000:]
    return out, log, stdout
