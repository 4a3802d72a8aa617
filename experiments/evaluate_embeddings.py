"""Evaluate saved embeddings with the paper's protocol (section 4): NMI, Recall@K, MAP@R.

    python -m experiments.evaluate_embeddings --npz=test_embeddings.npz --ks=1,10,100,1000

The .npz holds `embeddings` [n, d] and `labels` [n] (names settable by flag). Prints the
metrics in percent and writes them as JSON.
"""

import os

import numpy as np
from absl import app, flags, logging

from experiments.reporting import markdown_table
from fl_embed.evaluation import CUB_CARS_KS, evaluate
from fl_embed.evaluation.report import write_metrics_json

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "npz", None, "Path of a .npz with the embeddings and labels of a test set."
)
flags.DEFINE_string(
    "embeddings_key", "embeddings", "Name of the [n, d] embeddings array in the .npz."
)
flags.DEFINE_string(
    "labels_key", "labels", "Name of the [n] integer labels array in the .npz."
)
flags.DEFINE_list(
    "ks",
    [str(k) for k in CUB_CARS_KS],
    "Recall@K cut-offs: 1,2,4,8 for CUB-200-2011 and Cars196, 1,10,100,1000 for Stanford Online Products.",
)
flags.DEFINE_integer("seed", 0, "random_state of k-means.")
flags.DEFINE_string(
    "output_json",
    None,
    "Where to write the metrics; default: <npz without .npz>.metrics.json.",
)
flags.mark_flag_as_required("npz")
flags.register_validator(
    "npz", lambda path: os.path.isfile(path), message="--npz must be an existing file."
)
flags.register_validator(
    "ks",
    lambda ks: bool(ks) and all(k.isdigit() and int(k) >= 1 for k in ks),
    message="--ks must be a comma-separated list of positive integers.",
)


def main(argv):
    del argv
    with np.load(FLAGS.npz) as data:
        missing = {FLAGS.embeddings_key, FLAGS.labels_key} - set(data.files)
        if missing:
            raise app.UsageError(
                f"{FLAGS.npz} has no array named {sorted(missing)}; it holds {data.files}."
            )
        embeddings, labels = data[FLAGS.embeddings_key], data[FLAGS.labels_key]
    ks = tuple(int(k) for k in FLAGS.ks)
    logging.info(
        "Evaluating %d embeddings of dimension %s, %d classes.",
        len(embeddings),
        embeddings.shape[1:],
        len(np.unique(labels)),
    )
    try:
        metrics = evaluate(embeddings, labels, ks=ks, seed=FLAGS.seed)
    except ValueError as err:
        raise app.UsageError(f"{FLAGS.npz}: {err}") from err
    print(markdown_table({os.path.basename(FLAGS.npz): metrics}))
    output = FLAGS.output_json or os.path.splitext(FLAGS.npz)[0] + ".metrics.json"
    write_metrics_json(
        output,
        metrics,
        npz=os.path.abspath(FLAGS.npz),
        num_items=len(labels),
        num_classes=len(np.unique(labels)),
        dim=int(embeddings.shape[1]),
        ks=list(ks),
        seed=FLAGS.seed,
    )
    logging.info("Wrote %s", output)


if __name__ == "__main__":
    app.run(main)
