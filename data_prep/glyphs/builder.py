"""TFDS builder serving the shipped glyph file with a class-disjoint split (no download)."""

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


class Glyphs(tfds.core.GeneratorBasedBuilder):
    """Characters rendered in real fonts: a class is a character, an example one font's glyph.

    Splits: `train` holds the first half of the classes (by code point), `test` the second half,
    as CUB-200-2011 is split in the paper. Labels are global class indices. Bump VERSION whenever
    storage.SHIPPED_SHA256 changes, so prepared copies are rebuilt.
    """

    # TFDS 4.9.10 finds a builder's source through `importlib_resources`, which a fresh install
    # does not bring; this builder downloads nothing, so its own file is all TFDS needs to know.
    code_path = epath.Path(__file__)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "32x32 grayscale glyphs; the shipped data_prep/data/glyphs32.npz."
    }

    def __init__(
        self,
        *,
        source: str = storage.SHIPPED_FILE,
        sha256: str | None = storage.SHIPPED_SHA256,
        **kwargs,
    ):
        """Args: source, the .npz to serve; sha256, its expected digest (None: unchecked);
        kwargs go to `tfds.core.GeneratorBasedBuilder` (data_dir, ...)."""
        self._source = source
        self._sha256 = sha256
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        data = storage.read_npz(self._source, self._sha256)
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
        data = storage.read_npz(self._source, self._sha256)
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
