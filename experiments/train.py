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
from fl_embed import export, models
from fl_embed.evaluation import evaluate, write_metrics_json
from fl_embed.samplers import classes_per_batch
from fl_embed.training import (
    CheckpointError,
    make_train_step,
    margin_multiplier_schedule,
)
from fl_embed.training.checkpoints import NonFiniteError, RunCheckpoints, check_finite
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
flags.DEFINE_integer(
    "keep_exports",
    export.KEEP_EXPORTS,
    "SavedModel versions kept in export/ (newest first; TF Serving serves the newest).",
    lower_bound=1,
)
flags.DEFINE_boolean(
    "export",
    True,
    "Write the SavedModel at the end (the comparison's tuning trials skip it).",
)
flags.mark_flag_as_required("output_dir")


def run_settings() -> configs.Config:
    """The data set's config with every set flag applied."""
    return configs.from_flags(FLAGS)


def start_run(config: configs.Config) -> tuple[tf.distribute.Strategy, bool]:
    """The strategy and whether this worker is the chief; stores or checks the run directory.

    Raises:
      SystemExit: a bad strategy or TF_CONFIG, a batch that does not split across the replicas,
        a --data_dir that is a file, or an output directory holding another run.
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
        data_prep.check_dirs(FLAGS.data_dir)
        resumed = run_dir.prepare(FLAGS.output_dir, config, replicas, extra, chief)
    except (ValueError, OSError) as err:  # RunConfigMismatchError included
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
    return strategy, chief


def chief_evaluator(model, config: configs.Config, chief: bool):
    """step -> test-split metrics (logged, written to TensorBoard) on the chief; None elsewhere.

    Evaluation embeds the test split with the local copy of the weights (no collective), so only
    the chief does it; the other workers wait for it at the next collective.
    """
    embed = run_dir.embed_fn(model, config.backbone)
    writer = run_dir.summary_writer(FLAGS.output_dir, "eval", chief)
    split, classes = run_dir.eval_split(config)

    def evaluate_at(step: int) -> dict[str, float] | None:
        if not chief:
            return None
        start = time.monotonic()
        embeddings, labels = run_dir.embed_split(
            embed,
            config.dataset,
            split,
            FLAGS.data_dir,
            FLAGS.eval_batch_size,
            classes,
        )
        metrics = evaluate(embeddings, labels, ks=config.ks, seed=config.seed)
        write_scalars(writer, step, metrics)
        shown = ", ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items())
        logging.info(
            "eval at step %d on the %s (%.0fs): %s",
            step,
            "test split" if classes is None else f"{len(classes)} validation classes",
            time.monotonic() - start,
            shown,
        )
        return metrics

    return evaluate_at


def build_model(config: configs.Config, strategy: tf.distribute.Strategy):
    """The embedder and its RMSprop optimizer, made under the strategy's scope.

    Raises:
      SystemExit: pretrained weights that are missing or do not fit the backbone.
    """
    with strategy.scope():
        try:
            model = run_dir.build_model(config)
        except (OSError, ValueError) as err:
            sys.exit(f"error: --weights={config.weights}: {err}")
        optimizer = keras.optimizers.RMSprop(config.learning_rate)
        optimizer.build(model.trainable_variables)
    return model, optimizer


def restore(strategy, chief: bool, **trackables) -> tuple[RunCheckpoints, int]:
    """The run's checkpoints, restored to the latest one; and the step every worker starts at."""
    checkpoints = RunCheckpoints(
        os.path.join(FLAGS.output_dir, run_dir.CHECKPOINT_DIR),
        chief=chief,
        **trackables,
    )
    try:
        checkpoints.restore_latest()
        start_step = check_workers_agree(
            strategy,
            int(trackables["step"].numpy()),
            "the step restored from --output_dir",
            " Every worker must see the chief's --output_dir (a shared filesystem).",
        )
    except (CheckpointError, ValueError) as err:
        sys.exit(f"error: {err}")
    return checkpoints, start_step


def input_batches(config: configs.Config, strategy, start_step: int):
    """Each replica's share of every training batch.

    Every pipeline draws the same global batches (same seed and start step) and keeps its
    replicas' rows; TensorFlow's auto-sharding is not involved (see BUILD_NOTES.md).
    """
    replicas = strategy.num_replicas_in_sync
    sub_batches = run_dir.run_record(config, replicas)["loss_sub_batches"]
    return iter(
        strategy.distribute_datasets_from_function(
            lambda context: run_dir.train_batches(
                config, start_step, FLAGS.data_dir, sub_batches, context
            )
        )
    )


def train_loop(config, train_step, batches, gamma, step, checkpoints, evaluate_at):
    """Steps from `step` + 1 to train_steps: decay gamma, train, log, checkpoint, evaluate."""
    gamma_at = margin_multiplier_schedule(
        config.margin_multiplier, config.margin_decay_steps, config.margin_decay_rate
    )
    total = config.train_steps
    start_step = int(step.numpy())
    writer = run_dir.summary_writer(FLAGS.output_dir, "train", checkpoints.chief)
    progress, window = Progress(total, start_step), {}
    for current in range(start_step + 1, total + 1):
        gamma.assign(gamma_at(current - 1))
        try:
            terms = train_step(*next(batches))
        except tf.errors.InvalidArgumentError as err:
            # The losses check their input: NaN embeddings mean the weights already diverged.
            if "NaN or Inf" not in err.message:
                raise
            raise NonFiniteError(
                f"step {current}: the model's embeddings hold NaN or Inf, the weights diverged "
                "(lower the learning rate?). Nothing was saved at this step."
            ) from err
        step.assign(current)
        for name, value in terms.items():
            window.setdefault(name, []).append(float(value))
        # A diverged step is stopped at once: its weights are never saved or exported.
        check_finite([], current, loss=window["loss"][-1])
        if current % config.log_every == 0 or current == total:
            # A weight nobody differentiates (a batch norm moving variance, an RMSprop slot)
            # can turn Inf while the loss stays finite; checked here, not in the step, it
            # costs one pass over the variables per log line and nothing per step.
            check_finite(checkpoints.variables, current)
            means = {name: sum(v) / len(v) for name, v in window.items()}
            means.update(gamma=float(gamma.numpy()), learning_rate=config.learning_rate)
            write_scalars(writer, current, means)
            shown = {"loss": means["loss"], "gamma": means["gamma"]}
            logging.info(progress.line(current, shown))
            window = {}
        if current % config.checkpoint_every == 0 or current == total:
            checkpoints.save(current, loss=window_loss(window, terms))
        if config.eval_every and current % config.eval_every == 0 and current != total:
            evaluate_at(current)


def window_loss(window: dict, terms: dict) -> float:
    """The loss of the step just taken (the log window may have been emptied)."""
    return window["loss"][-1] if window.get("loss") else float(terms["loss"])


def export_and_evaluate(config, strategy, chief: bool, model, evaluate_at):
    """The SavedModel, the final evaluation and metrics.json (on the chief), then the workers'
    check of the trained weights; returns the final metrics (None on another worker)."""
    out = FLAGS.output_dir
    if FLAGS.export:
        export_dir = os.path.join(out, run_dir.EXPORT_DIR)
        with chief_write_path(export_dir, chief) as export_dir:
            written = run_dir.export_run(
                model, config, export_dir, config.train_steps, FLAGS.keep_exports
            )
        if chief:
            logging.info("Exported the SavedModel to %s", written)
    metrics = evaluate_at(config.train_steps)
    if chief:
        record = run_dir.run_record(config, strategy.num_replicas_in_sync)
        path = os.path.join(out, run_dir.METRICS_FILE)
        write_metrics_json(path, metrics, step=config.train_steps, **record)
    try:
        digest = check_weights_agree(strategy, model)
    except ValueError as err:
        sys.exit(f"error: {err}")
    logging.info("Weights digest %016x, the same on every worker", digest)
    return metrics


def print_table(config: configs.Config, rows: dict) -> None:
    """The final metrics, after the data set's floor when asked for, as a Markdown table."""
    validating = config.validation_fraction > 0
    floor = (
        data_prep.floor_metrics(config.dataset, seed=config.seed)
        if FLAGS.show_floor and not validating
        else None
    )
    if floor is not None:
        rows = {"raw pixels (floor)": floor, **rows}
    shown = "validation classes" if validating else "test split"
    print(f"\n{config.dataset} {shown}, {len(rows)} embeddings compared:\n")
    print(markdown_table(rows, config.ks))


def main(argv):
    del argv
    config = run_settings()
    strategy, chief = start_run(config)
    keras.utils.set_random_seed(config.seed)
    model, optimizer = build_model(config, strategy)
    # gamma (eq. 6) is decayed by the loop; the compiled step reads the variable.
    gamma = tf.Variable(
        config.margin_multiplier, trainable=False, name="margin_multiplier"
    )
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoints, start_step = restore(
        strategy, chief, model=model, optimizer=optimizer, step=step
    )
    batches = input_batches(config, strategy, start_step)
    train_step = make_train_step(
        model,
        optimizer,
        config.loss,
        gamma,
        models.preprocess_for(config.backbone),
        config.cluster_inference,
        strategy,
        config.cluster_loss_mode,
        configs.loss_knobs(config),
    )
    evaluate_at = chief_evaluator(model, config, chief)
    rows = {}
    if config.eval_at_start and start_step == 0 and chief:
        rows["untrained model"] = evaluate_at(0)
    try:
        train_loop(config, train_step, batches, gamma, step, checkpoints, evaluate_at)
        metrics = export_and_evaluate(config, strategy, chief, model, evaluate_at)
    except NonFiniteError as err:
        sys.exit(f"error: {err} Rerunning resumes from the last good checkpoint.")
    if chief:
        rows[f"{config.loss} loss, {config.train_steps} steps"] = metrics
        print_table(config, rows)
    else:
        logging.info("Worker done; the chief evaluated and wrote the run.")


if __name__ == "__main__":
    app.run(main)
