"""Train an image embedding with the clustering loss or a baseline, evaluate it, export it.

    python -m experiments.train --dataset=glyphs --output_dir=runs/glyphs

Every unset flag takes the data set's value from `experiments/configs.py` (the paper's, section
3.5). Rerunning the same command resumes from the latest checkpoint in --output_dir.

Several machines (issue 7): start the same command on every worker with --strategy=multi_worker
and a TF_CONFIG naming the cluster and the worker's task; --output_dir must be on a filesystem
all of them see. Worker 0 (or the "chief" task) writes the run directory, the others only read it.
"""

import os
import sys
import time

import keras
import tensorflow as tf
from absl import app, flags, logging

from experiments import configs
from fl_embed import models
from fl_embed.evaluation import evaluate, write_metrics_json
from fl_embed.losses.cluster import INFERENCE_BACKENDS
from fl_embed.samplers import classes_per_batch
from fl_embed.training import (
    DEFAULT_CLUSTER_INFERENCE,
    LOSSES,
    CheckpointError,
    Progress,
    RunConfigMismatchError,
    check_run_config,
    make_train_step,
    margin_multiplier_schedule,
    markdown_table,
    runs,
    write_scalars,
)
from fl_embed.training.checkpoints import RunCheckpoints
from fl_embed.training.distributed import (
    CLUSTER_LOSS_MODES,
    STRATEGIES,
    check_batch_split,
    check_workers_agree,
    chief_write_path,
    is_chief,
    loss_sub_batches,
    make_replicated_train_step,
    make_strategy,
    weights_digest,
)

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "dataset",
    "glyphs",
    configs.DATASETS,
    "Data set; picks the config of experiments/configs.py.",
)
flags.DEFINE_enum(
    "loss",
    "clustering",
    LOSSES,
    "Loss: the clustering loss (eq. 6) or a baseline of section 4.",
)
flags.DEFINE_string(
    "output_dir", None, "Run directory: checkpoints, summaries, metrics.json, export/."
)
flags.DEFINE_integer("seed", 0, "Seed of weights, batch sampling and augmentation.")
flags.DEFINE_string(
    "data_dir", None, "TFDS data directory (default ~/tensorflow_datasets)."
)
flags.DEFINE_enum("backbone", None, models.BACKBONES, "Backbone; default the config's.")
flags.DEFINE_string(
    "weights",
    None,
    "Backbone weights: 'imagenet', a .h5 file, or 'none'; default the config's.",
)
flags.DEFINE_integer(
    "train_steps",
    None,
    "Optimizer steps (paper: 10k CUB, 20k Cars196/SOP).",
    lower_bound=1,
)
flags.DEFINE_integer(
    "batch_size", None, "Examples per batch m (paper: 128).", lower_bound=2
)
flags.DEFINE_float(
    "classes_per_batch_ratio", None, "Classes per batch C/m (paper: 0.25, SOP 0.75)."
)
flags.DEFINE_integer(
    "embedding_dim", None, "Embedding size d (paper: 64).", lower_bound=1
)
flags.DEFINE_float("learning_rate", None, "RMSprop learning rate.", lower_bound=0.0)
flags.DEFINE_float(
    "margin_multiplier", None, "Initial margin multiplier gamma.", lower_bound=0.0
)
flags.DEFINE_float(
    "margin_decay_rate", None, "gamma's factor per decay interval (paper: 0.94)."
)
flags.DEFINE_integer(
    "margin_decay_steps", None, "Steps between two decays of gamma.", lower_bound=1
)
flags.DEFINE_boolean(
    "augment", None, "Random augmentation of training images; default the config's."
)
flags.DEFINE_integer(
    "eval_every",
    None,
    "Steps between evaluations on the test split; 0: final only.",
    lower_bound=0,
)
flags.DEFINE_boolean(
    "eval_at_start", None, "Also evaluate the untrained model; default the config's."
)
flags.DEFINE_integer(
    "checkpoint_every",
    None,
    "Steps between checkpoints (a killed run loses at most this many).",
    lower_bound=1,
)
flags.DEFINE_integer(
    "log_every",
    None,
    "Steps between progress lines and TensorBoard summaries.",
    lower_bound=1,
)
flags.DEFINE_integer(
    "eval_batch_size",
    256,
    "Images per batch when embedding the test split.",
    lower_bound=1,
)
flags.DEFINE_enum(
    "cluster_inference",
    DEFAULT_CLUSTER_INFERENCE,
    INFERENCE_BACKENDS,
    "Backend of the clustering loss's loss-augmented inference (graph, xla or numpy).",
)
flags.DEFINE_enum(
    "strategy",
    "default",
    STRATEGIES,
    "Distribution: default (one device), mirrored (this machine's devices) or multi_worker "
    "(MultiWorkerMirroredStrategy over the workers named in TF_CONFIG). Each replica gets its "
    "share of every batch.",
)
flags.DEFINE_enum(
    "cluster_loss_mode",
    "global",
    CLUSTER_LOSS_MODES,
    "With several replicas: global (all-gathered, every loss sees the whole batch) or local "
    "(each replica's sub-batch of m/R examples from exactly C/R classes).",
)
flags.DEFINE_boolean(
    "show_floor",
    True,
    "Print the data set's floor (glyphs: raw pixels, ~30 s) next to the result.",
)
flags.mark_flag_as_required("output_dir")

# Flags that override a config field of the same name.
CONFIG_FLAGS = (
    "backbone", "weights", "train_steps", "batch_size", "classes_per_batch_ratio", "embedding_dim",
    "learning_rate", "margin_multiplier", "margin_decay_rate", "margin_decay_steps", "augment",
    "eval_every", "eval_at_start", "checkpoint_every", "log_every",
)  # fmt: skip


@flags.validator(
    "classes_per_batch_ratio", message="--classes_per_batch_ratio must be in (0, 1]."
)
def _check_ratio(ratio):
    return ratio is None or 0.0 < ratio <= 1.0


@flags.validator("margin_decay_rate", message="--margin_decay_rate must be in (0, 1].")
def _check_decay_rate(rate):
    return rate is None or 0.0 < rate <= 1.0


@flags.multi_flags_validator(["dataset", "batch_size", "classes_per_batch_ratio"])
def _check_classes_per_batch(values):
    """A batch must hold at least 2 classes and fewer than m (section 3.5)."""
    config = configs.get_config(values["dataset"])
    m = values["batch_size"] or config.batch_size
    ratio = values["classes_per_batch_ratio"] or config.classes_per_batch_ratio
    try:
        classes_per_batch(m, ratio)
    except ValueError as err:
        raise flags.ValidationError(str(err)) from err
    return True


def run_settings(replicas: int = 1) -> dict:
    """The data set's config with every set flag applied, plus the loss, seed and distribution.

    Args:
      replicas: replicas of the strategy; with the local loss mode each one's sub-batch is a
        separate loss ("loss_sub_batches"), which is part of what the run learns.
    """
    settings = configs.get_config(FLAGS.dataset).__dict__.copy()
    for name in CONFIG_FLAGS:
        if FLAGS[name].value is not None:
            settings[name] = FLAGS[name].value
    if settings["weights"] in ("none", ""):
        settings["weights"] = None
    settings.update(
        loss=FLAGS.loss,
        seed=FLAGS.seed,
        cluster_inference=FLAGS.cluster_inference,
        strategy=FLAGS.strategy,
        replicas=replicas,
        cluster_loss_mode=FLAGS.cluster_loss_mode,
        loss_sub_batches=loss_sub_batches(FLAGS.cluster_loss_mode, replicas),
    )
    return settings


def settings_flagfile(settings: dict) -> str:
    """The flags that rerun (resume) this run, one per line."""
    lines = [
        f"--dataset={FLAGS.dataset}",
        f"--loss={FLAGS.loss}",
        f"--seed={FLAGS.seed}",
        f"--strategy={FLAGS.strategy}",
        f"--cluster_loss_mode={FLAGS.cluster_loss_mode}",
    ]
    lines += [f"--output_dir={FLAGS.output_dir}"]
    lines += [f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else []
    for name in CONFIG_FLAGS:
        value = settings[name]
        if isinstance(value, bool):
            lines.append(f"--{name}" if value else f"--no{name}")
        else:
            lines.append(f"--{name}={'none' if value is None else value}")
    return "\n".join(lines) + "\n"


def prepare_output_dir(settings: dict, chief: bool = True) -> bool:
    """Stores the settings in a fresh --output_dir or checks the run already there; True if resuming.

    Only the chief writes; another worker checks a stored run and otherwise leaves it to the chief.
    """
    flagfile = os.path.join(FLAGS.output_dir, "flags.txt")
    hint = f" (python -m experiments.train --flagfile={flagfile})"
    resumed = check_run_config(
        FLAGS.output_dir, settings, resume_hint=hint, write=chief
    )
    if chief and not resumed:
        with open(flagfile + ".tmp", "w") as f:
            f.write(settings_flagfile(settings))
        os.replace(flagfile + ".tmp", flagfile)
    return resumed


def evaluate_split(embed, settings: dict, step: int, writer) -> dict:
    """Evaluates on the test split, logs the metrics and writes them to TensorBoard."""
    start = time.monotonic()
    embeddings, labels = runs.embed_split(
        embed, settings["dataset"], "test", FLAGS.data_dir, FLAGS.eval_batch_size
    )
    metrics = evaluate(embeddings, labels, ks=settings["ks"], seed=settings["seed"])
    write_scalars(writer, step, metrics)
    shown = ", ".join(f"{name} {100 * value:.2f}" for name, value in metrics.items())
    logging.info("eval at step %d (%.0fs): %s", step, time.monotonic() - start, shown)
    return metrics


def main(argv):
    del argv
    # MultiWorkerMirroredStrategy must exist before TensorFlow's runtime starts.
    try:
        strategy = make_strategy(FLAGS.strategy)
    except ValueError as err:
        sys.exit(f"error: {err}")
    chief, replicas = is_chief(strategy), strategy.num_replicas_in_sync
    settings = run_settings(replicas)
    try:
        check_batch_split(
            settings["batch_size"],
            classes_per_batch(
                settings["batch_size"], settings["classes_per_batch_ratio"]
            ),
            replicas,
            FLAGS.cluster_loss_mode,
        )
        resumed = prepare_output_dir(settings, chief)
    except (ValueError, RunConfigMismatchError) as err:
        sys.exit(f"error: {err}")
    keras.utils.set_random_seed(settings["seed"])
    logging.info(
        "%s run in %s: %s",
        "Resuming" if resumed else "Starting",
        FLAGS.output_dir,
        settings,
    )

    with strategy.scope():
        model = runs.build_model(settings)
        optimizer = keras.optimizers.RMSprop(settings["learning_rate"])
        optimizer.build(model.trainable_variables)
    gamma_at = margin_multiplier_schedule(
        settings["margin_multiplier"],
        settings["margin_decay_steps"],
        settings["margin_decay_rate"],
    )
    gamma = tf.Variable(gamma_at(0), trainable=False, name="margin_multiplier")
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoints = RunCheckpoints(
        os.path.join(FLAGS.output_dir, runs.CHECKPOINT_DIR),
        chief=chief,
        model=model,
        optimizer=optimizer,
        step=step,
    )
    try:
        checkpoints.restore_latest()
        start_step = check_workers_agree(
            strategy,
            int(step.numpy()),
            "the step restored from --output_dir",
            " Every worker must see the chief's --output_dir (a shared filesystem).",
        )
    except (CheckpointError, ValueError) as err:
        sys.exit(f"error: {err}")
    total = settings["train_steps"]
    scale = models.preprocess_for(settings["backbone"])
    if FLAGS.strategy == "default":
        batches = runs.train_batches(settings, start_step, FLAGS.data_dir)
        train_step = make_train_step(
            model,
            optimizer,
            settings["loss"],
            gamma,
            scale,
            settings["cluster_inference"],
        )
    else:
        # Every pipeline draws the same global batches (same seed and start step) and keeps its
        # replicas' rows; TensorFlow's auto-sharding is not involved (see BUILD_NOTES.md).
        batches = strategy.distribute_datasets_from_function(
            lambda context: runs.train_batches(
                settings,
                start_step,
                FLAGS.data_dir,
                sub_batches=settings["loss_sub_batches"],
                input_context=context,
            )
        )
        train_step = make_replicated_train_step(
            strategy,
            model,
            optimizer,
            settings["loss"],
            gamma,
            scale,
            settings["cluster_inference"],
            FLAGS.cluster_loss_mode,
        )
    logging.info(
        "%d replica(s), %s strategy%s",
        strategy.num_replicas_in_sync,
        FLAGS.strategy,
        "" if chief else ", not the chief: the chief writes the run directory",
    )
    embed = runs.embed_fn(model, settings["backbone"])
    batches = iter(batches)
    if chief:
        train_writer = tf.summary.create_file_writer(
            os.path.join(FLAGS.output_dir, "train")
        )
        eval_writer = tf.summary.create_file_writer(
            os.path.join(FLAGS.output_dir, "eval")
        )
    else:
        train_writer = eval_writer = tf.summary.create_noop_writer()

    # Evaluation embeds the test split with the local copy of the weights (no collective), so
    # only the chief does it; the other workers wait for it at the next step's all-reduce.
    initial = None
    if chief and settings["eval_at_start"] and start_step == 0:
        initial = evaluate_split(embed, settings, 0, eval_writer)
    progress = Progress(total, start_step)
    window = {}
    for current in range(start_step + 1, total + 1):
        gamma.assign(gamma_at(current - 1))
        images, labels = next(batches)
        terms = train_step(images, labels)
        step.assign(current)
        for name, value in terms.items():
            window.setdefault(name, []).append(float(value))
        if current % settings["log_every"] == 0 or current == total:
            means = {name: sum(v) / len(v) for name, v in window.items()}
            means.update(
                gamma=float(gamma.numpy()), learning_rate=settings["learning_rate"]
            )
            write_scalars(train_writer, current, means)
            logging.info(
                progress.line(current, {"loss": means["loss"], "gamma": means["gamma"]})
            )
            window = {}
        if current % settings["checkpoint_every"] == 0 or current == total:
            checkpoints.save(current)
        if (
            chief
            and settings["eval_every"]
            and current % settings["eval_every"] == 0
            and current != total
        ):
            evaluate_split(embed, settings, current, eval_writer)

    with chief_write_path(
        os.path.join(FLAGS.output_dir, runs.EXPORT_DIR), chief
    ) as export_dir:
        runs.export_run(model, settings, export_dir)
    if chief:
        logging.info("Exported the SavedModel to %s", export_dir)
        metrics = evaluate_split(embed, settings, total, eval_writer)
        write_metrics_json(
            os.path.join(FLAGS.output_dir, runs.METRICS_FILE),
            metrics,
            step=total,
            **settings,
        )
    # Also keeps the workers together: one that exits while the chief still evaluates is
    # reported to the chief as a crashed task.
    try:
        digest = check_workers_agree(
            strategy, weights_digest(model), "the trained weights"
        )
    except ValueError as err:
        sys.exit(f"error: {err}")
    logging.info("Weights digest %016x, the same on every worker", digest)
    if not chief:
        logging.info("Worker done; the chief evaluated and wrote the run.")
        return
    rows = {f"{settings['loss']} loss, {total} steps": metrics}
    if initial is not None:
        rows = {"untrained model": initial, **rows}
    floor = (
        configs.floor_metrics(settings["dataset"], settings["seed"])
        if FLAGS.show_floor
        else None
    )
    if floor is not None:
        rows = {"raw pixels (floor)": floor, **rows}
    print(f"\n{settings['dataset']} test split, {len(rows)} embeddings compared:\n")
    print(markdown_table(rows, settings["ks"]))


if __name__ == "__main__":
    app.run(main)
