"""Files the data set tests use: font subsets (tests/data/fonts) and damaged data files."""

import os
import shutil

FONT_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "fonts")


def copy_fonts(directory, names) -> str:
    """Copies the test fonts `names` into `directory` (a render run's font folder); returns it."""
    for name in names:
        shutil.copy(os.path.join(FONT_DIR, name), os.path.join(directory, name))
    return str(directory)


def corrupted_copy(source: str, destination, divisor: int, mask: int) -> str:
    """Copies `source` to `destination` with byte len // divisor XOR-ed with `mask`; returns the
    copy's path."""
    with open(source, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // divisor] ^= mask
    with open(destination, "wb") as f:
        f.write(bytes(data))
    return str(destination)
