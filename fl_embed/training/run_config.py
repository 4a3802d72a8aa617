"""The settings of a run, stored next to its checkpoints, so a rerun resumes only the same run."""

import json
import os
from typing import Any

RUN_CONFIG_FILE = "run_config.json"
# Settings that may change when a run is resumed: they decide how long it trains and how often
# it reports, not what it learns. Everything else must match the stored run.
RESUMABLE_FIELDS = frozenset(
    {
        "train_steps",
        "eval_every",
        "checkpoint_every",
        "log_every",
        "eval_batch_size",
        "cluster_inference",
        # How the run is spread over devices and workers (issue 7). With the global clustering
        # loss the replica count does not change what is learned, and in local mode it is
        # checked through "loss_sub_batches", so a run may move to more or fewer devices.
        "strategy",
        "replicas",
    }
)
# Settings added after runs were first stored, with the value an older run_config.json means.
ADDED_FIELD_DEFAULTS = {"cluster_loss_mode": "global", "loss_sub_batches": 1}


class RunConfigMismatchError(ValueError):
    """The output directory holds a run with different settings."""


def read_run_config(output_dir: str) -> dict[str, Any] | None:
    """The settings stored in `output_dir`, or None if it holds no run.

    Raises:
      RunConfigMismatchError: the stored file is not a JSON object.
    """
    path = os.path.join(output_dir, RUN_CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            stored = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise RunConfigMismatchError(
            f"{path} is unreadable ({err}); choose another output directory or delete it."
        ) from err
    if not isinstance(stored, dict):
        raise RunConfigMismatchError(f"{path} does not hold a JSON object of settings.")
    return stored


def _differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """`name: stored -> wanted` for every non-resumable setting that differs."""
    stored, wanted = ({**ADDED_FIELD_DEFAULTS, **c} for c in (stored, wanted))
    names = sorted((set(stored) | set(wanted)) - RESUMABLE_FIELDS)
    return [
        f"{name}: {stored.get(name)!r} (stored) vs {wanted.get(name)!r} (now)"
        for name in names
        if stored.get(name) != wanted.get(name)
    ]


def check_run_config(
    output_dir: str, config: dict[str, Any], resume_hint: str = "", write: bool = True
) -> bool:
    """Stores `config` in a fresh `output_dir`, or checks that it matches the run already there.

    A setting missing from an older stored run (or from `config`) counts as its
    `ADDED_FIELD_DEFAULTS` value.

    Args:
      output_dir: the run's directory (created if missing).
      config: JSON-serialisable settings of the run.
      resume_hint: how to rerun the stored run, added to the error message.
      write: store `config` in a fresh directory; False only checks a stored run (a worker
        that is not the chief of a multi-worker run).

    Returns:
      True if `output_dir` already held this run (resume), False if it was fresh.

    Raises:
      RunConfigMismatchError: the stored run differs in a setting outside `RESUMABLE_FIELDS`;
        the message lists the differences and how to resume or start anew.
    """
    config = json.loads(
        json.dumps(config)
    )  # tuples -> lists, as they come back from the file
    stored = read_run_config(output_dir)
    if stored is None and not write:
        return False
    if stored is None:
        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(output_dir, RUN_CONFIG_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(path + ".tmp", path)
        return False
    differences = _differences(stored, config)
    if differences:
        raise RunConfigMismatchError(
            f"{output_dir} holds a run with different settings:\n  "
            + "\n  ".join(differences)
            + f"\nTo resume that run, rerun it with its own settings{resume_hint}; to start a new "
            "run, choose another output directory (or delete this one)."
        )
    return True
