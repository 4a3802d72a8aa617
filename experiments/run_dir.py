"""A training run's directory: its settings, model, data and checkpoints, shared by the trainer,
`experiments/evaluate.py`, `experiments/export.py` and `experiments/compare.py`.

Layout of a run directory:
  run_config.json   the settings (`check_run_config`): the `configs.Config` and the replicas
  flags.txt         the trainer's flags (rerun with --flagfile to resume)
  checkpoints/      `tf.train.CheckpointManager` checkpoints (model, optimizer, step)
  train/, eval/     TensorBoard summaries
  metrics.json      final evaluation
  export/           the SavedModel
"""

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import flags

import data_prep
from experiments import configs
from fl_embed import export, models
from fl_embed.io import atomic_write_text
from fl_embed.losses.registry import get_loss
from fl_embed.training import CheckpointError, checkpoints, embed_dataset
from fl_embed.training.distributed import loss_sub_batches

RUN_CONFIG_FILE = "run_config.json"
FLAGS_FILE = "flags.txt"
CHECKPOINT_DIR = "checkpoints"
EXPORT_DIR = "export"
METRICS_FILE = "metrics.json"
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
ADDED_FIELD_DEFAULTS = {
    "cluster_loss_mode": "global",
    "loss_sub_batches": 1,
    "margin": 1.0,
    "reg_lambda": 0.002,
    "validation_fraction": 0.0,
}


class RunConfigMismatchError(ValueError):
    """The output directory holds a run with different settings."""


def run_record(config: configs.Config, replicas: int = 1) -> dict[str, Any]:
    """What run_config.json stores: the config, the replica count, and how many separate
    batches a step's loss sees (R in local mode, which is part of what the run learns)."""
    return {
        **dataclasses.asdict(config),
        "replicas": replicas,
        "loss_sub_batches": loss_sub_batches(config.cluster_loss_mode, replicas),
    }


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
      config: JSON-serialisable settings of the run (`run_record`).
      resume_hint: how to rerun the stored run, added to the error message.
      write: store `config` in a fresh directory; False only checks a stored run (a worker
        that is not the chief of a multi-worker run).

    Returns:
      True if `output_dir` already held this run (resume), False if it was fresh.

    Raises:
      RunConfigMismatchError: the stored run differs in a setting outside `RESUMABLE_FIELDS`;
        the message lists the differences and how to resume or start anew.
    """
    # Tuples -> lists, as they come back from the file.
    config = json.loads(json.dumps(config))
    stored = read_run_config(output_dir)
    if stored is None and not write:
        return False
    if stored is None:
        text = json.dumps(config, indent=2, sort_keys=True) + "\n"
        atomic_write_text(os.path.join(output_dir, RUN_CONFIG_FILE), text)
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


def prepare(
    output_dir: str,
    config: configs.Config,
    replicas: int,
    extra_flags: list[str],
    chief: bool = True,
) -> bool:
    """Stores the run in a fresh `output_dir` (settings and flags.txt), or checks the run there.

    Only the chief writes; another worker checks a stored run and otherwise leaves it to the chief.

    Args:
      output_dir: the run's directory.
      config: the run's config.
      replicas: replicas of the run's strategy.
      extra_flags: trainer flags outside the config (--output_dir, --data_dir) for flags.txt.
      chief: whether this worker writes the run directory.

    Returns:
      True if resuming the run already there.

    Raises:
      RunConfigMismatchError: `output_dir` holds another run; the message says how to resume it.
    """
    check_output_dir(output_dir, chief)
    flagfile = os.path.join(output_dir, FLAGS_FILE)
    record = run_record(config, replicas)
    fresh = read_run_config(output_dir) is None
    try:
        if chief and fresh:
            # flags.txt first: run_config.json marks a stored run, so a kill between the two
            # leaves a fresh directory, never a stored run without its flags.txt.
            atomic_write_text(
                flagfile, "\n".join(configs.to_flags(config) + extra_flags) + "\n"
            )
        return check_run_config(
            output_dir, record, resume_hint=_resume_hint(output_dir), write=chief
        )
    except OSError as err:
        raise ValueError(
            f"cannot write the run in --output_dir {output_dir}: {err.strerror or err}."
        ) from err


def _resume_hint(output_dir: str) -> str:
    """How to rerun the run stored in `output_dir`, as true as the files there allow."""
    flagfile = os.path.join(output_dir, FLAGS_FILE)
    if os.path.isfile(flagfile):
        return f" (python -m experiments.train --flagfile={flagfile})"
    return (
        f" (its settings are in {os.path.join(output_dir, RUN_CONFIG_FILE)}; it has no "
        f"{FLAGS_FILE}, so pass them as flags)"
    )


def check_output_dir(output_dir: str, write: bool = True) -> None:
    """A ValueError naming the problem when `output_dir` cannot hold a run: empty, a file, or
    (when `write`) not creatable or not writable."""
    if not output_dir or not output_dir.strip():
        raise ValueError("--output_dir is empty: name the run's directory.")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir {output_dir} is a file, not a directory.")
    if not write:
        return
    try:
        os.makedirs(output_dir, exist_ok=True)
        # Permission bits do not tell (root ignores them; read-only mounts): try a write.
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ValueError(
            f"--output_dir {output_dir} is not writable: {err.strerror or err}."
        ) from err


def summary_writer(
    output_dir: str, folder: str, chief: bool = True
) -> tf.summary.SummaryWriter:
    """The TensorBoard writer of the run's `folder` (train/ or eval/); a no-op writer on a
    worker that is not the chief (one writer per folder and run)."""
    if not chief:
        return tf.summary.create_noop_writer()
    return tf.summary.create_file_writer(os.path.join(output_dir, folder))


def build_model(config: configs.Config, weights: str | None = "config") -> keras.Model:
    """The embedder a run trains: its backbone, d, input shape, and the loss's normalisation.

    Args:
      config: the run's config.
      weights: backbone weights; "config" for the config's own.

    Returns:
      keras.Model mapping scaled float images to embeddings.
    """
    size, channels = config.image_size, config.channels
    return models.build_embedder(
        config.backbone,
        embedding_dim=config.embedding_dim,
        l2_normalize=get_loss(config.loss).l2_normalize,
        weights=config.weights if weights == "config" else weights,
        input_shape=(size, size, channels),
    )


def latest_checkpoint(path: str) -> str:
    """The checkpoint prefix `path` names: a prefix itself, or the latest in a run / checkpoint dir.

    Raises:
      CheckpointError: nothing restorable there.
    """
    if tf.io.gfile.exists(path + ".index"):
        return path
    for directory in (os.path.join(path, CHECKPOINT_DIR), path):
        # Recovered from the ckpt-N files themselves when the index is missing or damaged.
        found = (
            checkpoints.latest_checkpoint(directory)
            if os.path.isdir(directory)
            else None
        )
        if found:
            return found
    raise CheckpointError(
        f"No checkpoint found at {path} (looked in {path}/{CHECKPOINT_DIR})."
    )


def restore_model(model: keras.Model, path: str) -> str:
    """Loads the model weights of the latest checkpoint at `path` (the optimizer is left out).

    Args:
      model: built with `build_model` from the run's config.
      path: the run's output directory, or its `checkpoints/` folder, or a checkpoint prefix.

    Returns:
      The checkpoint path restored.

    Raises:
      CheckpointError: no checkpoint there, or one that does not fit the model.
    """
    path = latest_checkpoint(path)
    try:
        status = tf.train.Checkpoint(model=model).restore(path).expect_partial()
        status.assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as err:
        raise CheckpointError(
            f"Cannot restore the model from {path}: {err.__class__.__name__}: {err}"
        ) from err
    return path


def find_run_dir(path: str) -> str:
    """The run directory of `path`: the directory itself, or the run above a checkpoint (prefix).

    Raises:
      CheckpointError: no run_config.json in `path` or the two directories above it.
    """
    candidates = [path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))]
    for candidate in candidates:
        if candidate and os.path.isfile(os.path.join(candidate, RUN_CONFIG_FILE)):
            return candidate
    raise CheckpointError(
        f"{path} is not a training run: no {RUN_CONFIG_FILE} there or above it (pass the "
        "--output_dir of experiments.train, its checkpoints/ folder or a checkpoint prefix)."
    )


def load_run(path: str) -> tuple[configs.Config, keras.Model, str]:
    """Rebuilds a run's model from its config and restores its checkpoint.

    The backbone is built without its initial weights file: the checkpoint holds every weight.

    Args:
      path: a run directory, its `checkpoints/` folder, or a checkpoint prefix in it.

    Returns:
      (config, model, checkpoint path).

    Raises:
      CheckpointError: not a run, no checkpoint, or a checkpoint that does not fit the config.
    """
    config = configs.from_record(read_run_config(find_run_dir(path)))
    model = build_model(config, weights=None)
    return config, model, restore_model(model, path)


def tuning_classes(config: configs.Config) -> tuple[Any, Any]:
    """(classes a run trains on, classes it is evaluated on): (None, None) for all train classes
    and the test split; with `validation_fraction`, the class-disjoint halves of the train split."""
    if not config.validation_fraction:
        return None, None
    return data_prep.validation_split(config.dataset, config.validation_fraction)


def eval_split(config: configs.Config) -> tuple[str, Any]:
    """(split, classes) a run is evaluated on: the test split, or its validation classes."""
    validation = tuning_classes(config)[1]
    return ("test", None) if validation is None else ("train", validation)


def train_batches(
    config: configs.Config,
    start_step: int,
    data_dir: str | None = None,
    sub_batches: int = 1,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Endless class-ratio batches (section 3.5) of pixels in [0, 255] for a run starting at a step.

    The data seed is derived from (seed, start_step): a resumed run draws fresh batches from the
    same distribution instead of repeating the ones it already trained on, and every worker of a
    multi-worker run (all restored to the same step) draws the same global batches.

    Args:
      config: the run's config (dataset, batch_size, classes_per_batch_ratio, seed, augment).
      start_step: the step the run starts (or resumes) from.
      data_dir: TFDS data directory.
      sub_batches, input_context: batches split across replicas, see
        `fl_embed.samplers.ClassRatioSampler` and `class_ratio_dataset`.

    Returns:
      tf.data.Dataset of (images [m, H, W, C] in [0, 255], labels int64 [m]); with an
      `input_context`, this pipeline's per-replica batches of m / replicas.
    """
    seed = int(np.random.SeedSequence([config.seed, start_step]).generate_state(1)[0])
    return data_prep.class_ratio_batches(
        config.dataset,
        config.batch_size,
        config.classes_per_batch_ratio,
        seed,
        data_dir=data_dir,
        scaling="raw",
        augment=config.augment,
        sub_batches=sub_batches,
        input_context=input_context,
        classes=tuning_classes(config)[0],
    )


def embed_fn(model: keras.Model, backbone: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """Compiled images in [0, 255] -> embeddings of a Keras embedder in inference mode."""
    scale = models.preprocess_for(backbone)
    return tf.function(
        lambda images: model(scale(images), training=False), reduce_retracing=True
    )


def embed_split(
    embed: Callable[[tf.Tensor], tf.Tensor],
    dataset: str,
    split: str = "test",
    data_dir: str | None = None,
    batch_size: int = 256,
    classes=None,
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings [n, d], labels [n]) of a whole split (or of its `classes`), unaugmented, in a
    fixed order."""
    examples = data_prep.load(
        dataset,
        split,
        data_dir=data_dir,
        training=False,
        scaling="raw",
        classes=classes,
    )
    return embed_dataset(embed, examples, batch_size)


def saved_model_embed_fn(
    export_dir: str,
) -> tuple[Callable[[tf.Tensor], tf.Tensor], dict[str, Any]]:
    """Images in [0, 255] -> embeddings through a SavedModel's `embed_images` signature.

    The pixel scaling is the one recorded in the export's `fl_embed.json`.

    Returns:
      (embed function, the export's metadata).

    Raises:
      FileNotFoundError: no SavedModel in export_dir.
      ValueError: the export does not record a known scaling.
    """
    loaded = export.load_embedder(export_dir)
    scaling = loaded.metadata.get("preprocessing", {}).get("scaling")
    if scaling not in models.SCALINGS:
        raise ValueError(
            f"{export_dir}/{export.METADATA_FILE} records scaling {scaling!r}, not one of "
            f"{sorted(models.SCALINGS)}; cannot feed the embed_images signature."
        )
    signature = loaded.signatures[export.IMAGES_SIGNATURE]
    scale = models.SCALINGS[scaling]

    def embed(images):
        return signature(**{export.INPUT_KEY: scale(images)})[export.OUTPUT_KEY]

    return embed, loaded.metadata


def export_run(
    model: keras.Model,
    config: configs.Config,
    export_dir: str,
    version: int | None = None,
    keep_exports: int | None = export.KEEP_EXPORTS,
) -> str:
    """Writes a run's model as version `version` (the global step; None: latest + 1) of the
    SavedModel base directory `export_dir`, with its preprocessing (`fl_embed.export`)."""
    return export.export_saved_model(
        model,
        export_dir,
        image_size=config.image_size,
        resize_to=config.resize_to,
        channels=config.channels,
        scaling=models.preprocess_for(config.backbone),
        version=version,
        keep_exports=keep_exports,
    )


def define_checkpoint_flag() -> None:
    """--checkpoint: the run (or one checkpoint of it) a command line reads."""
    flags.DEFINE_string(
        "checkpoint",
        None,
        "A training run's output_dir, its checkpoints/ folder or a checkpoint prefix.",
    )
