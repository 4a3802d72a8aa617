"""The glyph data set on disk: a byte-reproducible .npz, its checksum, and class-disjoint splits (numpy only).

The Hangul set (`data_prep.hangul`) is stored the same way, through `ShippedFile`.
"""

import dataclasses
import hashlib
import io
import os
import zipfile

import numpy as np

DATA_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data"
)
SHIPPED_FILE = os.path.join(DATA_DIR, "glyphs32.npz")
# Recorded when the shipped file was rendered (see BUILD_NOTES.md); load refuses any other content.
SHIPPED_SHA256 = "65ffcc773609046b42d9bd4e253c562bbd0140d0ac603794e626fccd723b95e4"
SPLITS = ("train", "test")
# A fixed timestamp in the archive so the same arrays always give the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ARRAY_KEYS = ("images", "labels", "fonts", "codepoints", "font_names")


class ChecksumError(ValueError):
    """The data file's content is not the one recorded."""


@dataclasses.dataclass(frozen=True)
class ShippedFile:
    """A data file shipped in the repository.

    Attributes:
        path: the .npz.
        sha256: its recorded digest; loading refuses any other content.
        regenerate: the command that renders it again.
    """

    path: str
    sha256: str
    regenerate: str


SHIPPED = ShippedFile(
    SHIPPED_FILE, SHIPPED_SHA256, "python -m data_prep.glyphs.render --output <path>"
)


def save_npz(path: str, arrays: dict[str, np.ndarray]) -> str:
    """Writes arrays as a compressed .npz whose bytes depend only on the arrays.

    `numpy.savez_compressed` stamps the current time into the archive; this writer uses a fixed
    timestamp and sorted member order instead.

    Args:
        path: output file; its directory is created if missing.
        arrays: name -> array; no object arrays.

    Returns:
        sha256 hex digest of the written file.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(
                member, np.asarray(arrays[name]), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    data = buffer.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: str) -> str:
    """sha256 hex digest of a file's bytes.

    Args:
        path: file to hash.

    Returns:
        64 hex characters.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str, sha256: str) -> None:
    """Checks a data file's digest.

    Args:
        path: the file.
        sha256: expected hex digest.

    Raises:
        ChecksumError: if the digest differs.
    """
    actual = sha256_of(path)
    if actual != sha256:
        raise ChecksumError(
            f"data file {path!r} has sha256 {actual}, expected {sha256}: the file is corrupt "
            "or was regenerated without updating its recorded checksum"
        )


def read_npz(
    path: str = SHIPPED_FILE,
    sha256: str | None = SHIPPED_SHA256,
    regenerate: str = SHIPPED.regenerate,
) -> dict[str, np.ndarray]:
    """Reads a glyph (or Hangul) data file after checking its checksum.

    Args:
        path: the .npz file; default the shipped glyph file.
        sha256: expected digest; None skips the check (a freshly rendered full-size set).
        regenerate: the command named when the file is missing.

    Returns:
        images uint8 [n, H, W], labels int64 [n] (class index), fonts int32 [n] (font index),
        codepoints int32 [C] (class index -> Unicode code point), font_names str [F].

    Raises:
        FileNotFoundError: if the file is missing, with the command that regenerates it.
        ChecksumError: if the digest differs from the recorded one.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"data file {path!r} is missing; regenerate it with `{regenerate}` "
            "(see BUILD_NOTES.md)"
        )
    if sha256 is not None:
        verify(path, sha256)
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in ARRAY_KEYS}


def split_classes(num_classes: int, split: str) -> np.ndarray:
    """Class indices of a split: the first half of the classes train, the second half test.

    Args:
        num_classes: C; an odd C gives the extra class to train.
        split: "train" or "test".

    Returns:
        int64 [C_split] class indices in increasing order.

    Raises:
        ValueError: for any other split name.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: the data set has splits {SPLITS}")
    half = (num_classes + 1) // 2
    return np.arange(0, half) if split == "train" else np.arange(half, num_classes)


def select_split(
    data: dict[str, np.ndarray], split: str
) -> tuple[np.ndarray, np.ndarray]:
    """Examples of one split as arrays ready for a model.

    Args:
        data: arrays from `read_npz`.
        split: "train" or "test".

    Returns:
        images uint8 [n, H, W, 1] and labels int64 [n] (global class index, so test labels start
        at the first test class).

    Raises:
        ValueError: for an unknown split.
    """
    classes = split_classes(len(data["codepoints"]), split)
    mask = np.isin(data["labels"], classes)
    return data["images"][mask][..., None], data["labels"][mask].astype(np.int64)
