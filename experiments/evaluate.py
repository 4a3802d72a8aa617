"""Metrics of a trained embedder (a checkpoint or a SavedModel) on a data set split.

    python -m experiments.evaluate --checkpoint=runs/glyphs
    python -m experiments.evaluate --saved_model=runs/glyphs/export --dataset=glyphs

Prints NMI, Recall@K, MAP@R and R-precision as a table (section 4's protocol) and writes them as
JSON.
"""

import os
import sys
import tempfile

from absl import app, flags, logging

import data_prep
from experiments import configs, run_dir
from experiments.reporting import markdown_table
from fl_embed.evaluation import evaluate, write_metrics_json
from fl_embed.training import CheckpointError

FLAGS = flags.FLAGS
run_dir.define_checkpoint_flag()
flags.DEFINE_string(
    "saved_model", None, "An export directory written by experiments.train or export."
)
flags.DEFINE_enum(
    "dataset",
    None,
    configs.DATASETS,
    "Data set to evaluate on; default the run's (required for --saved_model).",
)
flags.DEFINE_enum(
    "split",
    "test",
    ["train", "test"],
    "Split to evaluate (the paper: test, unseen classes).",
)
flags.DEFINE_string(
    "data_dir", None, "TFDS data directory (default ~/tensorflow_datasets)."
)
flags.DEFINE_list(
    "ks",
    None,
    "Recall@K cut-offs; default the data set's (1,2,4,8; SOP 1,10,100,1000).",
)
flags.DEFINE_integer("batch_size", 256, "Images per embedding batch.", lower_bound=1)
flags.DEFINE_integer(
    "seed", 0, "random_state of k-means.", lower_bound=0, upper_bound=2**32 - 1
)
flags.DEFINE_string(
    "output_json",
    None,
    "Where to write the metrics; default metrics_<dataset>_<split>.json beside the model.",
)
flags.register_multi_flags_validator(
    ["checkpoint", "saved_model"],
    lambda v: (v["checkpoint"] is None) != (v["saved_model"] is None),
    message="Give exactly one of --checkpoint or --saved_model.",
)
flags.register_multi_flags_validator(
    ["saved_model", "dataset"],
    lambda v: v["saved_model"] is None or v["dataset"] is not None,
    message="--saved_model needs --dataset (a SavedModel does not record its data set).",
)
flags.register_validator(
    "ks",
    lambda ks: (
        ks is None or (bool(ks) and all(k.isdigit() and int(k) >= 1 for k in ks))
    ),
    message="--ks must be a comma-separated list of positive integers.",
)


def load_embed_fn():
    """(embed function, data set, where to write by default, what was evaluated) from the flags."""
    if FLAGS.saved_model:
        embed, _ = run_dir.saved_model_embed_fn(FLAGS.saved_model)
        where = os.path.dirname(os.path.abspath(FLAGS.saved_model))
        return (
            embed,
            FLAGS.dataset,
            where,
            {"saved_model": os.path.abspath(FLAGS.saved_model)},
        )
    config, model, path = run_dir.load_run(FLAGS.checkpoint)
    logging.info("Restored %s", path)
    dataset = FLAGS.dataset or config.dataset
    where = run_dir.find_run_dir(FLAGS.checkpoint)
    return (
        run_dir.embed_fn(model, config.backbone),
        dataset,
        where,
        {"checkpoint": path},
    )


def check_writable(path: str) -> None:
    """Raises OSError naming `path` when a file cannot be written there (tried, since root
    ignores permission bits and a mount may be read-only)."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".write-test-"):
            pass
    except OSError as err:
        raise OSError(f"cannot write {path}: {err.strerror or err}") from None


def main(argv):
    del argv
    try:
        # Refused before minutes of embedding, not when writing the result.
        if FLAGS.output_json and os.path.isdir(FLAGS.output_json):
            raise IsADirectoryError(
                f"--output_json {FLAGS.output_json} is a directory."
            )
        data_prep.check_dirs(FLAGS.data_dir)
        embed, dataset, where, source = load_embed_fn()
        output = FLAGS.output_json or os.path.join(
            where, f"metrics_{dataset}_{FLAGS.split}.json"
        )
        check_writable(output)
    except (CheckpointError, OSError, ValueError) as err:
        sys.exit(f"error: {err}")
    ks = tuple(int(k) for k in FLAGS.ks) if FLAGS.ks else configs.get_config(dataset).ks
    try:
        embeddings, labels = run_dir.embed_split(
            embed, dataset, FLAGS.split, FLAGS.data_dir, FLAGS.batch_size
        )
    except OSError as err:  # the data set missing, or its copy not writable
        sys.exit(f"error: {err}")
    metrics = evaluate(embeddings, labels, ks=ks, seed=FLAGS.seed)
    print(markdown_table({f"{dataset} {FLAGS.split}": metrics}))
    try:
        write_metrics_json(
            output,
            metrics,
            **source,
            dataset=dataset,
            split=FLAGS.split,
            num_items=len(labels),
            ks=list(ks),
            seed=FLAGS.seed,
        )
    except OSError as err:
        sys.exit(f"error: cannot write {output}: {err.strerror or err}")
    logging.info("Wrote %s", output)


if __name__ == "__main__":
    app.run(main)
