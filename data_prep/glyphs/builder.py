"""TFDS builders serving a shipped data file (glyphs, Hangul) with a class-disjoint split (no download)."""

from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_prep.glyphs import storage


def class_names(codepoints) -> list[str]:
    """ClassLabel names of the classes: "U+0041".

    Args:
        codepoints: int [C] Unicode code points.

    Returns:
        C strings.
    """
    return [f"U+{int(c):04X}" for c in codepoints]


class ShippedNpzBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Serves a shipped .npz (`SHIPPED`) with the class-disjoint split of `storage.split_classes`.

    A subclass names the file in `SHIPPED` and sets VERSION; bump VERSION whenever the file's
    recorded checksum changes, so prepared copies are rebuilt.
    """

    SHIPPED: storage.ShippedFile

    def _read(self) -> dict[str, np.ndarray]:
        return storage.read_npz(
            self.SHIPPED.path, self.SHIPPED.sha256, self.SHIPPED.regenerate
        )

    def _info(self) -> tfds.core.DatasetInfo:
        data = self._read()
        size = int(data["images"].shape[1])
        return self.dataset_info_from_configs(
            description=self.__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 1)),
                    "label": tfds.features.ClassLabel(
                        names=class_names(data["codepoints"])
                    ),
                    "font": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        """Both splits from the local file; dl_manager is not used (nothing to download)."""
        del dl_manager
        data = self._read()
        return {split: self._generate_examples(data, split) for split in storage.SPLITS}

    def _generate_examples(self, data: dict[str, np.ndarray], split: str):
        """Yields (key, example) for the classes of one split."""
        classes = storage.split_classes(len(data["codepoints"]), split)
        for i in np.flatnonzero(np.isin(data["labels"], classes)):
            label, font = int(data["labels"][i]), int(data["fonts"][i])
            yield (
                f"{label}-{font}",
                {
                    "image": data["images"][i][..., None],
                    "label": label,
                    "font": str(data["font_names"][font]),
                },
            )


class Glyphs(ShippedNpzBuilder):
    """Characters rendered in real fonts: a class is a character, an example one font's glyph.

    Splits: `train` holds the first half of the classes (by code point), `test` the second half,
    as CUB-200-2011 is split in the paper. Labels are global class indices.
    """

    # TFDS 4.9.10 finds a builder's source through `importlib_resources`, which a fresh install
    # does not bring; this builder downloads nothing, so its own file is all TFDS needs to know.
    code_path = epath.Path(__file__)
    SHIPPED = storage.SHIPPED
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "32x32 grayscale glyphs; the shipped data_prep/data/glyphs32.npz."
    }
