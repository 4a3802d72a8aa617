"""The shipped Hangul file, stored as the glyph set is (`data_prep.glyphs.storage`; numpy only)."""

import os

import numpy as np

from data_prep.glyphs import storage

# Recorded when the shipped file was rendered (see BUILD_NOTES.md); load refuses any other content.
SHIPPED = storage.ShippedFile(
    os.path.join(storage.DATA_DIR, "hangul32.npz"),
    "4ab7848a20d5ebf05703c74139b9446f7c4d53d83c6af143227df522caeb59d3",
    "python -m data_prep.hangul.render --output <path>",
)


def read_npz(
    path: str = SHIPPED.path, sha256: str | None = SHIPPED.sha256
) -> dict[str, np.ndarray]:
    """Reads a Hangul data file after checking its checksum (see `storage.read_npz`)."""
    return storage.read_npz(path, sha256, SHIPPED.regenerate)
