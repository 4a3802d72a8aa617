"""Renders the Hangul data set from a directory of font files, with the glyph renderer's machinery.

A class is a KS X 1001 syllable, an example is that syllable in one face. Rules, in order:
  1. a face that cannot be read, whose name marks a symbol font (`fonts.is_symbol_name`), that is
     a Noto CJK face of another region (JP, SC, TC, HK: the same Hangul as the KR face), or that
     lacks Hangul is skipped, with a log line;
  2. a face whose syllables do not look like the syllables (consensus below `min_consensus`, as
     for the glyph set) is skipped;
  3. near-duplicate faces (RMS difference of the `charset.SELECTION` syllables below
     `duplicate_rms`: clones and adjacent weights) keep only the first;
  4. each class gets `images_per_class` of the faces that cover it, drawn at random for that class
     (seeded), so each syllable is seen through its own few designs, as each SOP product is seen
     in its own few photos.
Faces are laid out by `LAYOUT`: the reference syllable's ink box is 22 of 32 pixels tall and
centred. The same fonts and flags give a byte-identical file.

Usage (the shipped file; install the packages listed in data_prep/data/hangul32.json first):
  python -m data_prep.hangul.render --font_dir=/usr/share/fonts
"""

import dataclasses
import re

import numpy as np
from absl import app, flags, logging

from data_prep.glyphs import fonts, select
from data_prep.glyphs import render as glyph_render
from data_prep.hangul import charset, storage

LAYOUT = fonts.Layout(
    reference=charset.REFERENCE_SYLLABLE, reference_height=22, centre_reference=True
)
# Noto CJK collections hold one face per region; their Hangul is the KR face's.
_OTHER_REGION = re.compile(r"\bCJK (JP|SC|TC|HK)\b")


@dataclasses.dataclass(frozen=True)
class HangulConfig:
    """Thresholds of the selection rules.

    Attributes:
        duplicate_rms: faces closer than this (RMS, [0, 1] pixels) on the selection syllables are
            one design.
        min_consensus: least share of a face's selection syllables nearest their own class mean.
        images_per_class: faces drawn for each class (SOP averages 5.3 images a class).
        seed: seed of the draws.
    """

    duplicate_rms: float = 0.05
    min_consensus: float = 0.05
    images_per_class: int = 5
    seed: int = 0


def korean_faces(faces: list[fonts.Face]) -> list[fonts.Face]:
    """Drops (with a log line) the Noto CJK faces of other regions, and unreadable faces' names.

    Args:
        faces: from `fonts.find_faces`.

    Returns:
        the faces whose family name does not name a JP/SC/TC/HK region (unreadable faces stay, for
        `render_faces` to log).
    """
    kept = []
    for face in faces:
        try:
            name = fonts.family_name(face)
        except fonts.FontError:
            kept.append(face)
            continue
        if _OTHER_REGION.search(name):
            logging.info("skipped %s (%s): another region's CJK face", face.name, name)
            continue
        kept.append(face)
    return kept


def build(
    font_dir: str,
    config: HangulConfig = HangulConfig(),
    codepoints=charset.KS_X_1001,
    selection=charset.SELECTION,
) -> tuple[dict[str, np.ndarray], dict]:
    """Renders and selects the data set from a font directory.

    Args:
        font_dir: directory searched recursively for font files.
        config: selection thresholds and the images per class.
        codepoints: candidate syllables (classes), increasing.
        selection: the syllables faces are compared and scored on.

    Returns:
        arrays: as `storage.read_npz` returns them, examples ordered by class then face.
        summary: JSON-serialisable counts, dropped faces, font files used.

    Raises:
        FileNotFoundError: if font_dir does not exist.
        ValueError: a candidate that is not a Hangul syllable, or a syllable that fewer than
            `images_per_class` faces cover.
    """
    codepoints, selection = list(codepoints), list(selection)
    outside = [c for c in codepoints + selection if not charset.is_hangul_syllable(c)]
    if outside:
        raise ValueError(f"not Hangul syllables: {[f'U+{c:04X}' for c in outside]}")
    found = fonts.find_faces(font_dir)
    faces = korean_faces(found)
    summary = {"faces_found": len(found), "faces_other_region": len(found) - len(faces)}
    faces, images, covered = glyph_render.render_faces(
        faces, selection, LAYOUT, selection, "the selection syllables (no Hangul)"
    )
    summary["faces_rendered"] = len(faces)
    every = np.arange(len(selection))
    faces, images, covered, summary["faces_not_like_letters"] = (
        glyph_render.drop_unlike_faces(faces, images, covered, every, config)
    )
    faces, _, _, summary["faces_near_duplicate"] = glyph_render.drop_near_duplicates(
        faces, images, covered, every, config
    )
    if not faces:
        raise ValueError(f"no Hangul face under {font_dir!r}")
    images, covered = [], []
    for face in faces:
        face_images, face_covered = fonts.render_face(face, codepoints, LAYOUT)
        if not face_covered.all():
            logging.info(
                "%s lacks %s: drawn only for the others",
                face.name,
                "".join(chr(c) for c in np.asarray(codepoints)[~face_covered]),
            )
        images.append(face_images)
        covered.append(face_covered)
    images, covered = np.stack(images), np.stack(covered)
    summary["syllables_missing"] = {
        face.name: "".join(chr(c) for c in np.asarray(codepoints)[~ok])
        for face, ok in zip(faces, covered)
        if not ok.all()
    }
    chosen = select.random_fonts_per_class(
        covered, config.images_per_class, config.seed
    )
    if chosen.sum(axis=0).min() < config.images_per_class:
        raise ValueError(
            f"fewer than {config.images_per_class} faces under {font_dir!r} cover some syllables"
        )
    return glyph_render.assemble(faces, images, chosen, codepoints, summary)


FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command-line flags (only when run as a program)."""
    flags.DEFINE_string(
        "font_dir", "/usr/share/fonts", "Directory searched recursively for fonts."
    )
    flags.DEFINE_string(
        "output",
        storage.SHIPPED.path,
        "Output .npz; metadata goes to the same name with .json.",
    )
    flags.DEFINE_integer(
        "images_per_class", 5, "Faces drawn for each syllable.", lower_bound=1
    )
    flags.DEFINE_float(
        "duplicate_rms",
        0.05,
        "RMS below which two faces are the same design.",
        lower_bound=0.0,
    )
    flags.DEFINE_float(
        "min_consensus",
        0.05,
        "Least share of a face's syllables nearest their class mean.",
        lower_bound=0.0,
    )
    flags.DEFINE_integer("seed", 0, "Seed of the per-class face draws.")


def main(argv: list[str]) -> None:
    """Renders, writes the .npz and its .json metadata, and logs the checksum."""
    del argv
    config = HangulConfig(
        duplicate_rms=FLAGS.duplicate_rms,
        min_consensus=FLAGS.min_consensus,
        images_per_class=FLAGS.images_per_class,
        seed=FLAGS.seed,
    )
    arrays, summary = build(FLAGS.font_dir, config)
    glyph_render.write(FLAGS.output, arrays, summary)


if __name__ == "__main__":
    define_flags()
    app.run(main)
