"""Train an image embedding with the clustering loss or a baseline, evaluate it, export it.

    python -m experiments.train --dataset=glyphs --output_dir=runs/glyphs

Every flag of a setting is made from `experiments/configs.py`; one left unset takes the data set's
value (the paper's, section 3.5). Rerunning the same command resumes from the latest checkpoint
in --output_dir.

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

import data_prep
from experiments import configs, run_dir
from experiments.reporting import Progress, markdown_table, write_scalars
from fl_embed import models
from fl_embed.evaluation import evaluate, write_metrics_json
from fl_embed.samplers import classes_per_batch
from fl_embed.training import (
    CheckpointError,
    make_train_step,
    margin_multiplier_schedule,
)
from fl_embed.training.checkpoints import RunCheckpoints
from fl_embed.training.distributed import (
    check_batch_split,
    check_weights_agree,
    check_workers_agree,
    chief_write_path,
    is_chief,
    make_strategy,
)

FLAGS = flags.FLAGS
configs.define_flags()
flags.DEFINE_string(
    "output_dir", None, "Run directory: checkpoints, summaries, metrics.json, export/."
)
flags.DEFINE_string(
    "data_dir", None, "TFDS data directory (default ~/tensorflow_datasets)."
)
flags.DEFINE_integer(
    "eval_batch_size",
    256,
    "Images per batch when embedding the test split.",
    lower_bound=1,
)
flags.DEFINE_boolean(
    "show_floor",
    True,
    "Print the data set's floor (glyphs: raw pixels, ~30 s) next to the result.",
)
flags.mark_flag_as_required("output_dir")


def run_settings() -> configs.Config:
    """The data set's config with every set flag applied."""
    return configs.from_flags(FLAGS)


def start_run(config: configs.Config) -> tuple[tf.distribute.Strategy, bool, bool]:
    """The strategy, whether this worker is the chief, and whether the run is resumed.

    Raises:
      SystemExit: a bad strategy or TF_CONFIG, a batch that does not split across the replicas,
        or an output directory holding another run.
    """
    try:
        # MultiWorkerMirroredStrategy must exist before TensorFlow's runtime starts.
        strategy = make_strategy(config.strategy)
        chief, replicas = is_chief(strategy), strategy.num_replicas_in_sync
        num_classes = classes_per_batch(
            config.batch_size, config.classes_per_batch_ratio
        )
        check_batch_split(
            config.batch_size, num_classes, replicas, config.cluster_loss_mode
        )
        extra = [f"--output_dir={FLAGS.output_dir}"]
        extra += [f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else []
        resumed = run_dir.prepare(FLAGS.output_dir, config, replicas, extra, chief)
    except ValueError as err:  # RunConfigMismatchError included
        sys.exit(f"error: {err}")
    logging.info(
        "%s run in %s: %s",
        "Resuming" if resumed else "Starting",
        FLAGS.output_dir,
        run_dir.run_record(config, replicas),
    )
    logging.info(
        "%d replica(s), %s strategy%s",
        replicas,
        config.strategy,
        "" if chief else ", not the chief: the chief writes the run directory",
    )
    return strategy, chief, resumed


def evaluate_split(embed, config: configs.Config, step: int, writer) -> dict:
    """Evaluates on the test split, logs the metrics and writes them to TensorBoard."""
    start = time.monotonic()
    embeddings, labels = run_dir.embed_split(
        embed, config.dataset, "test", FLAGS.data_dir, FLAGS.eval_batch_size
    )
    metrics = evaluate(embeddings, labels, ks=config.ks, seed=config.seed)
    write_scalars(writer, step, metrics)
    shown = ", ".join(f"{name} {100 * value:.2f}" for name, value in metrics.items())
    logging.info("eval at step %d (%.0fs): %s", step, time.monotonic() - start, shown)
    return metrics


def print_table(config: configs.Config, rows: dict) -> None:
    """The final metrics, after the data set's floor when asked for, as a Markdown table."""
    floor = (
        data_prep.floor_metrics(config.dataset, seed=config.seed)
        if FLAGS.show_floor
        else None
    )
    if floor is not None:
        rows = {"raw pixels (floor)": floor, **rows}
    print(f"\n{config.dataset} test split, {len(rows)} embeddings compared:\n")
    print(markdown_table(rows, config.ks))


def main(argv):
    del argv
    config = run_settings()
    strategy, chief, _ = start_run(config)
    keras.utils.set_random_seed(config.seed)
    out, total = FLAGS.output_dir, config.train_steps

    # Model, optimizer and the decayed margin multiplier gamma (section 3.5).
    with strategy.scope():
        model = run_dir.build_model(config)
        optimizer = keras.optimizers.RMSprop(config.learning_rate)
        optimizer.build(model.trainable_variables)
    gamma_at = margin_multiplier_schedule(
        config.margin_multiplier, config.margin_decay_steps, config.margin_decay_rate
    )
    gamma = tf.Variable(gamma_at(0), trainable=False, name="margin_multiplier")
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoints = RunCheckpoints(
        os.path.join(out, run_dir.CHECKPOINT_DIR),
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

    # Data: every pipeline draws the same global batches (same seed and start step) and keeps
    # its replicas' rows; TensorFlow's auto-sharding is not involved (see BUILD_NOTES.md).
    sub_batches = run_dir.run_record(config, strategy.num_replicas_in_sync)[
        "loss_sub_batches"
    ]
    batches = iter(
        strategy.distribute_datasets_from_function(
            lambda context: run_dir.train_batches(
                config, start_step, FLAGS.data_dir, sub_batches, context
            )
        )
    )
    # The loss and the one train step of every strategy.
    train_step = make_train_step(
        model,
        optimizer,
        config.loss,
        gamma,
        models.preprocess_for(config.backbone),
        config.cluster_inference,
        strategy,
        config.cluster_loss_mode,
    )

    # The loop. Evaluation embeds the test split with the local copy of the weights (no
    # collective), so only the chief does it; the others wait at the next step's all-reduce.
    embed = run_dir.embed_fn(model, config.backbone)
    train_writer, eval_writer = run_dir.summary_writers(out, chief)
    rows = {}
    if chief and config.eval_at_start and start_step == 0:
        rows["untrained model"] = evaluate_split(embed, config, 0, eval_writer)
    progress, window = Progress(total, start_step), {}
    for current in range(start_step + 1, total + 1):
        gamma.assign(gamma_at(current - 1))
        terms = train_step(*next(batches))
        step.assign(current)
        for name, value in terms.items():
            window.setdefault(name, []).append(float(value))
        if current % config.log_every == 0 or current == total:
            means = {name: sum(v) / len(v) for name, v in window.items()}
            means.update(gamma=float(gamma.numpy()), learning_rate=config.learning_rate)
            write_scalars(train_writer, current, means)
            shown = {"loss": means["loss"], "gamma": means["gamma"]}
            logging.info(progress.line(current, shown))
            window = {}
        if current % config.checkpoint_every == 0 or current == total:
            checkpoints.save(current)
        if (
            chief
            and config.eval_every
            and current % config.eval_every == 0
            and current != total
        ):
            evaluate_split(embed, config, current, eval_writer)

    # Export, the final evaluation, and the workers' agreement on the trained weights.
    with chief_write_path(os.path.join(out, run_dir.EXPORT_DIR), chief) as export_dir:
        run_dir.export_run(model, config, export_dir)
    if chief:
        logging.info("Exported the SavedModel to %s", export_dir)
        metrics = evaluate_split(embed, config, total, eval_writer)
        record = run_dir.run_record(config, strategy.num_replicas_in_sync)
        write_metrics_json(
            os.path.join(out, run_dir.METRICS_FILE), metrics, step=total, **record
        )
        rows[f"{config.loss} loss, {total} steps"] = metrics
    try:
        digest = check_weights_agree(strategy, model)
    except ValueError as err:
        sys.exit(f"error: {err}")
    logging.info("Weights digest %016x, the same on every worker", digest)
    if chief:
        print_table(config, rows)
    else:
        logging.info("Worker done; the chief evaluated and wrote the run.")


if __name__ == "__main__":
    app.run(main)
