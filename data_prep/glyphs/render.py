"""Renders the glyph data set from a directory of font files.

A class is a character, an example is that character in one font. Rules, in order:
  1. a face that cannot be read, whose name marks a symbol/dingbat/barcode/segment-display font, or
     that lacks the Latin capitals and digits is skipped, with a log line;
  2. a face whose letters do not look like the letters (consensus score below `min_consensus`) is
     skipped: dingbat fonts with ordinary names (the default, 0.05, was read off faces around it:
     below it sit letters in tiles and scrambled mappings, above it outline and stencil faces that
     still read as letters);
  3. near-duplicate faces (RMS difference of the rendered capitals and digits below `duplicate_rms`:
     clones such as Nimbus / TeX Gyre / URW, adjacent weights) keep only the first;
  4. cross-script look-alikes (Latin A, Greek Alpha, Cyrillic A) keep only the lowest code point:
     the groups of `charset.LOOKALIKES`, then any class whose median same-font RMS difference to an
     earlier class is below `alias_rms`; classes covered by fewer than `min_fonts` faces are dropped;
  5. each class keeps at most `max_fonts` faces, chosen in one seeded order.
The same fonts and flags give a byte-identical file.

Usage:
  python -m data_prep.glyphs.render --font_dir=/usr/share/fonts --output=/tmp/glyphs_full.npz \
      --max_fonts_per_class=0 --min_fonts_per_class=20
"""

import collections
import dataclasses
import json
import os
import subprocess

import numpy as np
from absl import app, flags, logging

from data_prep.glyphs import charset, fonts, select, storage


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    """Thresholds of the selection rules.

    Attributes:
        duplicate_rms: faces closer than this (RMS, [0, 1] pixels) on capitals and digits are clones.
        alias_rms: classes closer than this (median same-font RMS) are one shape.
        min_consensus: least share of a face's letters that must be nearest their own class mean.
        min_fonts: a class needs at least this many faces.
        max_fonts: at most this many faces per class; None for all.
        seed: seed of the font order used by the cap.
    """

    duplicate_rms: float = 0.05
    alias_rms: float = 0.05
    min_consensus: float = 0.05
    min_fonts: int = 20
    max_fonts: int | None = 100
    seed: int = 0


def render_faces(
    faces: list[fonts.Face],
    codepoints,
    layout: fonts.Layout | None = None,
    required=charset.REQUIRED,
    required_name: str = "A-Z and 0-9 (symbol-only or non-Latin font)",
) -> tuple[list[fonts.Face], np.ndarray, np.ndarray]:
    """Renders every usable face, skipping (with a log line) broken, symbol and non-Latin ones.

    Args:
        faces: candidates from `fonts.find_faces`.
        codepoints: the C code points to render.
        layout: canvas geometry and reference character; None for the glyph set's.
        required: code points (among `codepoints`) a face must cover to be kept.
        required_name: how the log line names them.

    Returns:
        kept faces, images uint8 [F, C, H, W], covered bool [F, C].
    """
    layout = layout or fonts.Layout()
    required = np.isin(np.asarray(codepoints), required)
    kept, images, covered = [], [], []
    for face in faces:
        try:
            name = fonts.family_name(face)
            if fonts.is_symbol_name(name) or fonts.is_symbol_name(
                os.path.basename(face.path)
            ):
                logging.info(
                    "skipped %s (%s): symbol/dingbat/barcode font by name",
                    face.name,
                    name,
                )
                continue
            face_images, face_covered = fonts.render_face(face, codepoints, layout)
        except fonts.FontError as e:
            logging.warning("skipped %s: %s", face.name, e)
            continue
        if not face_covered[required].all():
            logging.info(
                "skipped %s (%s): does not cover %s", face.name, name, required_name
            )
            continue
        kept.append(face)
        images.append(face_images)
        covered.append(face_covered)
    size = layout.size
    if not kept:
        return (
            [],
            np.zeros((0, len(codepoints), size, size), np.uint8),
            np.zeros((0, len(codepoints)), bool),
        )
    return kept, np.stack(images), np.stack(covered)


def _columns(codepoints, subset) -> np.ndarray:
    """Column indices of `subset` code points in `codepoints`."""
    position = {c: i for i, c in enumerate(codepoints)}
    return np.array([position[c] for c in subset])


def _keep(faces, images, covered, keep: np.ndarray):
    """(kept faces, their images, their coverage, number dropped) for a bool [F] mask."""
    kept = [f for f, ok in zip(faces, keep) if ok]
    return kept, images[keep], covered[keep], int((~keep).sum())


def drop_unlike_faces(
    faces: list[fonts.Face],
    images: np.ndarray,
    covered: np.ndarray,
    columns: np.ndarray,
    config: RenderConfig,
) -> tuple[list[fonts.Face], np.ndarray, np.ndarray, int]:
    """Rule 2: drops (with a log line) faces whose characters do not look like the characters.

    Args:
        faces: F rendered faces.
        images: uint8 [F, C, H, W]; covered: bool [F, C].
        columns: indices of the consensus alphabet among the C classes.
        config: gives `min_consensus`.

    Returns:
        the kept faces, their images and coverage, and how many faces were dropped.
    """
    scores = select.consensus_scores(images[:, columns], covered[:, columns])
    for face, score in zip(faces, scores):
        if score < config.min_consensus:
            logging.info(
                "skipped %s: letters do not look like letters (consensus %.2f)",
                face.name,
                score,
            )
    return _keep(faces, images, covered, scores >= config.min_consensus)


def drop_near_duplicates(
    faces: list[fonts.Face],
    images: np.ndarray,
    covered: np.ndarray,
    columns: np.ndarray,
    config: RenderConfig,
) -> tuple[list[fonts.Face], np.ndarray, np.ndarray, int]:
    """Rule 3: drops (with a log line) faces within `duplicate_rms` of an earlier kept face.

    Args:
        faces: F rendered faces, in the order that decides which clone stays (the first).
        images: uint8 [F, C, H, W]; covered: bool [F, C].
        columns: indices of the alphabet the faces are compared on (every face covers it).
        config: gives `duplicate_rms`.

    Returns:
        the kept faces, their images and coverage, and how many faces were dropped.
    """
    duplicate_of = select.near_duplicates(images[:, columns], config.duplicate_rms)
    for face, original in zip(faces, duplicate_of):
        if original >= 0:
            logging.info(
                "skipped %s: near-duplicate of %s", face.name, faces[original].name
            )
    return _keep(faces, images, covered, duplicate_of < 0)


def build(
    font_dir: str, config: RenderConfig = RenderConfig()
) -> tuple[dict[str, np.ndarray], dict]:
    """Renders and selects the data set from a font directory.

    Args:
        font_dir: directory searched recursively for font files.
        config: selection thresholds.

    Returns:
        arrays: as `storage.read_npz` returns them, examples ordered by class then font.
        summary: JSON-serialisable counts, dropped fonts and classes, font files used.

    Raises:
        FileNotFoundError: if font_dir does not exist.
        ValueError: if no class keeps `min_fonts` faces.
    """
    codepoints = charset.CANDIDATES
    faces = fonts.find_faces(font_dir)
    kept, images, covered = render_faces(faces, codepoints)
    summary = {"faces_found": len(faces), "faces_rendered": len(kept)}

    kept, images, covered, summary["faces_not_like_letters"] = drop_unlike_faces(
        kept, images, covered, _columns(codepoints, charset.CONSENSUS), config
    )
    kept, images, covered, summary["faces_near_duplicate"] = drop_near_duplicates(
        kept, images, covered, _columns(codepoints, charset.REQUIRED), config
    )

    aliases = charset.curated_aliases(codepoints)
    remaining = np.array([c for c in range(len(codepoints)) if c not in aliases])
    class_rms = select.pairwise_class_rms(images[:, remaining], covered[:, remaining])
    for dropped, original in select.alias_classes(class_rms, config.alias_rms).items():
        aliases[int(remaining[dropped])] = int(remaining[original])
    aliases = dict(sorted(aliases.items()))
    summary["alias_classes"] = {
        chr(codepoints[d]): chr(codepoints[k]) for d, k in aliases.items()
    }
    for dropped, original in aliases.items():
        logging.info(
            "dropped class U+%04X: looks like U+%04X",
            codepoints[dropped],
            codepoints[original],
        )
    counts = covered.sum(axis=0)
    classes = [
        c
        for c in range(len(codepoints))
        if c not in aliases and counts[c] >= config.min_fonts
    ]
    summary["classes_too_few_fonts"] = [
        chr(codepoints[c])
        for c in range(len(codepoints))
        if c not in aliases and counts[c] < config.min_fonts
    ]
    if not classes:
        raise ValueError(
            f"no class is covered by {config.min_fonts} distinct faces under {font_dir!r}"
        )

    chosen = select.fonts_per_class(covered[:, classes], config.max_fonts, config.seed)
    return assemble(
        kept, images[:, classes], chosen, [codepoints[c] for c in classes], summary
    )


def assemble(
    faces: list[fonts.Face],
    images: np.ndarray,
    chosen: np.ndarray,
    codepoints,
    summary: dict,
) -> tuple[dict[str, np.ndarray], dict]:
    """The data set's arrays from the chosen (face, class) pairs, ordered by class then face.

    Args:
        faces: F rendered faces.
        images: uint8 [F, C, H, W], the renders of the C classes.
        chosen: bool [F, C], the examples kept; faces with none are left out.
        codepoints: the C classes' code points.
        summary: counts so far, updated in place with the data set's.

    Returns:
        arrays as `storage.read_npz` returns them, and the summary.
    """
    used = np.flatnonzero(chosen.any(axis=1))
    chosen, images = chosen[used], images[used]
    font_index, class_index = np.nonzero(chosen.T)[::-1]
    arrays = {
        "images": images[font_index, class_index],
        "labels": class_index.astype(np.int64),
        "fonts": font_index.astype(np.int32),
        "codepoints": np.array(codepoints, np.int32),
        "font_names": np.array([faces[i].name for i in used]),
    }
    summary.update(
        faces_used=len(used),
        num_classes=len(codepoints),
        examples=len(arrays["labels"]),
        examples_per_class_min=int(chosen.sum(axis=0).min()),
        examples_per_class_max=int(chosen.sum(axis=0).max()),
        font_files=sorted({faces[i].path for i in used}),
    )
    return arrays, summary


def debian_packages(paths: list[str]) -> dict[str, str]:
    """Debian package owning each font file, from `dpkg -S` (empty where dpkg does not know it).

    Args:
        paths: font file paths.

    Returns:
        path -> package name.
    """
    owners: dict[str, str] = {}
    resolved = {os.path.realpath(p): p for p in paths}
    names = sorted(resolved)
    for start in range(0, len(names), 200):
        try:
            result = subprocess.run(
                ["dpkg", "-S", *names[start : start + 200]],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            return owners
        for line in result.stdout.splitlines():
            package, _, path = line.partition(": ")
            if path in resolved:
                owners[resolved[path]] = package.split(":")[0]
    return owners


def describe(arrays: dict[str, np.ndarray], summary: dict, sha256: str) -> dict:
    """Metadata written next to the data file: counts, classes, packages, checksum.

    Args:
        arrays: the data set.
        summary: from `build`.
        sha256: digest of the written .npz.

    Returns:
        JSON-serialisable dict.
    """
    packages = debian_packages(summary["font_files"])
    per_package = collections.Counter(
        packages.get(p, "(not from a Debian package)") for p in summary["font_files"]
    )
    return {
        "sha256": sha256,
        "image_size": int(arrays["images"].shape[1]),
        "classes": [f"U+{c:04X} {chr(c)}" for c in arrays["codepoints"]],
        "font_files_per_package": dict(sorted(per_package.items())),
        "fonts": [str(n) for n in arrays["font_names"]],
        **{k: v for k, v in summary.items() if k != "font_files"},
    }


def write(path: str, arrays: dict[str, np.ndarray], summary: dict) -> str:
    """Writes the .npz and, next to it, its .json metadata (`describe`); logs the checksum.

    Args:
        path: output .npz; the metadata goes to the same name with .json.
        arrays: the data set.
        summary: from `build`.

    Returns:
        sha256 hex digest of the written .npz.
    """
    sha256 = storage.save_npz(path, arrays)
    metadata = describe(arrays, summary, sha256)
    with open(os.path.splitext(path)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    logging.info(
        "wrote %s: %d classes, %d fonts, %d examples, sha256 %s",
        path,
        summary["num_classes"],
        summary["faces_used"],
        summary["examples"],
        sha256,
    )
    return sha256


FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command-line flags (only when run as a program, so importing the module
    next to other command lines does not clash on flag names)."""
    flags.DEFINE_string(
        "font_dir",
        "/usr/share/fonts",
        "Directory searched recursively for .ttf/.otf/.ttc files.",
    )
    flags.DEFINE_string(
        "output",
        storage.SHIPPED_FILE,
        "Output .npz; metadata goes to the same name with .json.",
    )
    flags.DEFINE_integer(
        "max_fonts_per_class",
        100,
        "At most this many fonts per class; 0 keeps all (full size).",
    )
    flags.DEFINE_integer(
        "min_fonts_per_class",
        20,
        "Drop classes covered by fewer distinct fonts.",
        lower_bound=1,
    )
    flags.DEFINE_float(
        "duplicate_rms",
        0.05,
        "RMS below which two fonts are the same design.",
        lower_bound=0.0,
    )
    flags.DEFINE_float(
        "alias_rms",
        0.05,
        "Median same-font RMS below which two classes are one shape.",
        lower_bound=0.0,
    )
    flags.DEFINE_float(
        "min_consensus",
        0.05,
        "Least share of a font's letters nearest their class mean.",
        lower_bound=0.0,
    )
    flags.DEFINE_integer(
        "seed", 0, "Seed of the font order used by --max_fonts_per_class."
    )
    flags.register_validator(
        "max_fonts_per_class", lambda v: v >= 0, "must be >= 0 (0 = no cap)"
    )


def main(argv: list[str]) -> None:
    """Renders, writes the .npz and its .json metadata, and logs the checksum."""
    del argv
    config = RenderConfig(
        duplicate_rms=FLAGS.duplicate_rms,
        alias_rms=FLAGS.alias_rms,
        min_consensus=FLAGS.min_consensus,
        min_fonts=FLAGS.min_fonts_per_class,
        max_fonts=FLAGS.max_fonts_per_class or None,
        seed=FLAGS.seed,
    )
    arrays, summary = build(FLAGS.font_dir, config)
    write(FLAGS.output, arrays, summary)


if __name__ == "__main__":
    define_flags()
    app.run(main)
