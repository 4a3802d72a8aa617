"""TFDS builder serving the shipped Hangul file with a class-disjoint split (no download)."""

from typing import ClassVar

import tensorflow_datasets as tfds
from etils import epath

from data_prep.glyphs.builder import ShippedNpzBuilder
from data_prep.hangul import storage


class Hangul(ShippedNpzBuilder):
    """Hangul syllables rendered in Korean fonts: a class is a KS X 1001 syllable, an example one
    face's rendering of it (five faces a class, drawn per class).

    Splits: `train` holds the first half of the classes (by code point, 가 .. 셴), `test` the second
    half, class-disjoint as Stanford Online Products is split in the paper. Labels are global
    class indices.
    """

    # As for the glyph builder: nothing to download, its own file is all TFDS needs to know.
    code_path = epath.Path(__file__)
    SHIPPED = storage.SHIPPED
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "32x32 grayscale Hangul syllables; the shipped data_prep/data/hangul32.npz."
    }
