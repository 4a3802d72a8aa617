"""A training run's directory: its settings, model, data and checkpoints, shared by the trainer,
`experiments/evaluate.py` and `experiments/export.py`.

Layout of a run directory:
  run_config.json   the settings (`run_config.check_run_config`)
  flags.txt         the trainer's flags (rerun with --flagfile to resume)
  checkpoints/      `tf.train.CheckpointManager` checkpoints (model, optimizer, step)
  train/, eval/     TensorBoard summaries
  metrics.json      final evaluation
  export/           the SavedModel
"""

import importlib
import os
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fl_embed import export, models
from fl_embed.training.checkpoints import CheckpointError
from fl_embed.training.embed import embed_dataset
from fl_embed.training.run_config import RUN_CONFIG_FILE, read_run_config
from fl_embed.training.step import L2_NORMALIZE

CHECKPOINT_DIR = "checkpoints"
EXPORT_DIR = "export"
METRICS_FILE = "metrics.json"


def build_model(settings: dict[str, Any]) -> keras.Model:
    """The embedder a run trains: its backbone, d, input shape, and the loss's normalisation.

    Args:
      settings: a run's settings (backbone, weights, embedding_dim, image_size, channels, loss).

    Returns:
      keras.Model mapping scaled float images to embeddings.
    """
    size, channels = settings["image_size"], settings["channels"]
    return models.build_embedder(
        settings["backbone"],
        embedding_dim=settings["embedding_dim"],
        l2_normalize=L2_NORMALIZE[settings["loss"]],
        weights=settings["weights"],
        input_shape=(size, size, channels),
    )


def restore_model(model: keras.Model, run_dir: str) -> str:
    """Loads the model weights of the latest checkpoint of a run (the optimizer is left out).

    Args:
      model: built with `build_model` from the run's settings.
      run_dir: the run's output directory, or its `checkpoints/` folder, or a checkpoint prefix.

    Returns:
      The checkpoint path restored.

    Raises:
      CheckpointError: no checkpoint there, or one that does not fit the model.
    """
    path = latest_checkpoint(run_dir)
    try:
        status = tf.train.Checkpoint(model=model).restore(path).expect_partial()
        status.assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as err:
        raise CheckpointError(
            f"Cannot restore the model from {path}: {err.__class__.__name__}: {err}"
        ) from err
    return path


def latest_checkpoint(path: str) -> str:
    """The checkpoint prefix `path` names: a prefix itself, or the latest in a run / checkpoint dir.

    Raises:
      CheckpointError: nothing restorable there.
    """
    if tf.io.gfile.exists(path + ".index"):
        return path
    for directory in (os.path.join(path, CHECKPOINT_DIR), path):
        found = tf.train.latest_checkpoint(directory)
        if found:
            return found
    raise CheckpointError(
        f"No checkpoint found at {path} (looked in {path}/{CHECKPOINT_DIR})."
    )


def train_batches(
    settings: dict[str, Any],
    start_step: int,
    data_dir: str | None = None,
    sub_batches: int = 1,
    input_context: tf.distribute.InputContext | None = None,
):
    """Endless class-ratio batches (section 3.5) of pixels in [0, 255] for a run starting at a step.

    The data seed is derived from (seed, start_step): a resumed run draws fresh batches from the
    same distribution instead of repeating the ones it already trained on, and every worker of a
    multi-worker run (all restored to the same step) draws the same global batches.

    Args:
      settings: the run's settings (dataset, batch_size, classes_per_batch_ratio, seed, augment).
      start_step: the step the run starts (or resumes) from.
      data_dir: TFDS data directory.
      sub_batches, input_context: batches split across replicas, see
        `fl_embed.samplers.ClassRatioSampler` and `class_ratio_dataset`.

    Returns:
      tf.data.Dataset of (images [m, H, W, C] in [0, 255], labels int64 [m]); with an
      `input_context`, this pipeline's per-replica batches of m / replicas.
    """
    import data_prep

    seed = int(
        np.random.SeedSequence([settings["seed"], start_step]).generate_state(1)[0]
    )
    if settings["dataset"] in data_prep.SHIPPED_SETS:
        shipped = importlib.import_module(f"data_prep.{settings['dataset']}")
        return shipped.class_ratio_batches(
            settings["batch_size"],
            settings["classes_per_batch_ratio"],
            seed,
            augment=settings["augment"],
            sub_batches=sub_batches,
            input_context=input_context,
        )
    return data_prep.class_ratio_batches(
        settings["dataset"],
        settings["batch_size"],
        settings["classes_per_batch_ratio"],
        seed,
        data_dir=data_dir,
        scaling="raw",
        sub_batches=sub_batches,
        input_context=input_context,
    )


def eval_examples(dataset: str, split: str = "test", data_dir: str | None = None):
    """(image in [0, 255], label) examples of a split, unaugmented, in a fixed order."""
    import data_prep

    if dataset in data_prep.SHIPPED_SETS:
        return data_prep.load(dataset, split, data_dir=data_dir, training=False)
    return data_prep.load(
        dataset, split, data_dir=data_dir, training=False, scaling="raw"
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
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings [n, d], labels [n]) of a whole split."""
    return embed_dataset(embed, eval_examples(dataset, split, data_dir), batch_size)


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


def load_run(path: str) -> tuple[dict[str, Any], keras.Model, str]:
    """Rebuilds a run's model from its settings and restores its checkpoint.

    The backbone is built without its initial weights file: the checkpoint holds every weight.

    Args:
      path: a run directory, its `checkpoints/` folder, or a checkpoint prefix in it.

    Returns:
      (settings, model, checkpoint path).

    Raises:
      CheckpointError: not a run, no checkpoint, or a checkpoint that does not fit the settings.
    """
    run_dir = find_run_dir(path)
    settings = read_run_config(run_dir)
    model = build_model({**settings, "weights": None})
    return settings, model, restore_model(model, path)


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


def export_run(model: keras.Model, settings: dict[str, Any], export_dir: str) -> str:
    """Writes a run's model as a SavedModel with its preprocessing (`fl_embed.export`)."""
    return export.export_saved_model(
        model,
        export_dir,
        image_size=settings["image_size"],
        resize_to=settings["resize_to"],
        channels=settings["channels"],
        scaling=models.preprocess_for(settings["backbone"]),
    )
