"""Export a training run's checkpoint as a SavedModel with in-graph preprocessing.

    python -m experiments.export --checkpoint=runs/glyphs [--export_dir=runs/glyphs/export]

Signatures: `serving_default` (encoded JPEG/PNG bytes -> embeddings) and `embed_images` (scaled
float images -> embeddings); see `fl_embed.export`. The trainer already exports at the end of a
run; this exports any checkpoint of it (e.g. an intermediate one).
"""

import os
import sys

from absl import app, flags, logging

from experiments import run_dir
from fl_embed.training import CheckpointError

FLAGS = flags.FLAGS
run_dir.define_checkpoint_flag()
flags.DEFINE_string(
    "export_dir", None, "Where to write the SavedModel; default <run dir>/export."
)
flags.mark_flag_as_required("checkpoint")


def main(argv):
    del argv
    try:
        config, model, path = run_dir.load_run(FLAGS.checkpoint)
    except (CheckpointError, OSError, ValueError) as err:
        sys.exit(f"error: {err}")
    export_dir = FLAGS.export_dir or os.path.join(
        run_dir.find_run_dir(FLAGS.checkpoint), run_dir.EXPORT_DIR
    )
    try:
        written = run_dir.export_run(model, config, export_dir)
    except (OSError, ValueError) as err:  # FileExistsError, PermissionError included
        sys.exit(f"error: {err}")
    logging.info("Exported %s to %s", path, written)
    print(written)


if __name__ == "__main__":
    app.run(main)
