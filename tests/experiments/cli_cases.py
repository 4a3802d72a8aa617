"""Runs one command line's `main` on many argument lists in one process, as `app.run` would.

    python -m tests.experiments.cli_cases experiments.train cases.json results.json [uid]

cases.json holds {case name: [arguments]}; results.json gets {case name: [outcome, message]}
with outcome "usage error" (absl refused a flag, exit 1), "error" (`sys.exit` with a message),
"ran" (main returned) or "traceback" (any other exception, what a user would see as one).

With a uid (run as root), the cases run as that user once the command line is imported: its
permission bits then hold, as for any user but root. The results file is written by root.
"""

import importlib
import json
import os
import sys
import traceback

from absl import flags

PRELOAD = (
    "tensorflow_datasets",
    "data_prep.glyphs.builder",
    "data_prep.glyphs.augment",
    "data_prep.glyphs.baseline",
    "sklearn.cluster",
    "tree",
    "fl_embed.export",
)


def _warm_up() -> None:
    """Imports, as root, the parts of TFDS that it imports lazily when a shipped set is read."""
    import pkgutil

    import tensorflow_datasets.core as tfds_core

    for module in pkgutil.walk_packages(
        tfds_core.__path__, "tensorflow_datasets.core."
    ):
        if ".test" in module.name or module.name.endswith("_test"):
            continue
        try:
            importlib.import_module(module.name)
        except Exception:  # noqa: BLE001, S112 - optional back ends (Beam, Apache Arrow...) may be missing
            continue


def run_case(module, args: list[str]) -> tuple[str, str]:
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS([module.__name__, *args])
    except flags.Error as err:
        return "usage error", str(err)
    try:
        module.main([])
    except SystemExit as err:
        if err.code in (None, 0):
            return "ran", ""
        return "error", str(err.code)
    except Exception:  # noqa: BLE001 - the point is to catch what would reach the user
        return "traceback", traceback.format_exc()[-2000:]
    return "ran", ""


def main(argv: list[str]) -> None:
    module_name, cases_path, results_path, *uid = argv[1:]
    module = importlib.import_module(module_name)
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    if uid:
        # Imported while still root: the interpreter's own files may be closed to the user
        # (here under /root, mode 700), and these are imported only when a case needs them.
        for name in PRELOAD:
            importlib.import_module(name)
        _warm_up()
    if not uid:
        results = {name: run_case(module, args) for name, args in cases.items()}
    else:
        # A child drops root for good; the parent, still root, writes the results it pipes back.
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read_end)
            os.setgid(int(uid[0]))
            os.setuid(int(uid[0]))
            results = {name: run_case(module, args) for name, args in cases.items()}
            with os.fdopen(write_end, "w") as pipe:
                json.dump(results, pipe)
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            results = json.load(pipe)
        os.waitpid(child, 0)
    with open(results_path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv)
