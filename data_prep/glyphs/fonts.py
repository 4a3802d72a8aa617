"""Font discovery and glyph rendering in a common layout (Pillow, imported lazily).

Every face is scaled so its reference character (capital H for the glyph set, a syllable for Hangul)
is `reference_height` pixels tall and every glyph sits on the same baseline row, centred horizontally
by its ink. Fitting each glyph's own bounding box instead
would make `o` and `O`, `,` and `'`, `-` and `_` the same picture.
"""

import dataclasses
import hashlib
import os
import re

import numpy as np

from data_prep.glyphs import charset

FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
# Code point no font maps: its render is the face's .notdef glyph, so a glyph equal to it is missing.
_UNMAPPED = 0x10FFFD
_PROBE_SIZE = 256
# A family or file name with one of these words is a symbol, dingbat, barcode, segment-display or
# icon font: its code points for letters hold pictures, not letters.
_SYMBOL_NAME = re.compile(
    r"symbol|dingbat|wingding|webding|bar ?code|code ?(39|128)|segment|dseg|7seg|\blcd\b|braille"
    r"|emoji|\bicons?\b|awesome|ornament|musical|chess|cursor|keypunch|dot ?matrix",
    re.IGNORECASE,
)


class FontError(Exception):
    """A face that cannot be used: unreadable, or without the reference character."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where glyphs sit on the canvas, in output pixels.

    Attributes:
        size: side of the square output image.
        reference: code point of the reference character whose ink height fixes each face's scale.
        reference_height: height of the reference character.
        baseline: row of the baseline, counted from the top.
        supersample: glyphs are drawn this many times larger, then box-filtered down.
        centre_reference: False puts every face's baseline on row `baseline` and measures the
            reference's ink above it (Latin: capitals, descenders and punctuation keep their
            places); True measures the reference's whole ink box and centres it on the canvas,
            ignoring `baseline` (Hangul: fonts put the baseline at different heights of the
            syllable box, and syllables have no descenders).
    """

    size: int = 32
    reference: int = charset.REFERENCE_CAPITAL
    reference_height: int = 16
    baseline: int = 24
    supersample: int = 4
    centre_reference: bool = False


@dataclasses.dataclass(frozen=True)
class Face:
    """One face of a font file (a .ttc collection holds several).

    Attributes:
        path: absolute path of the font file.
        index: face index inside the file.
        name: path relative to the scanned directory, with `#index` for collections.
    """

    path: str
    index: int
    name: str


def _ttc_face_count(path: str) -> int:
    """Number of faces in a TrueType collection, from its header (1 for a plain font file)."""
    with open(path, "rb") as f:
        header = f.read(12)
    if len(header) == 12 and header[:4] == b"ttcf":
        return int.from_bytes(header[8:12], "big")
    return 1


def find_faces(font_dir: str) -> list[Face]:
    """Lists the font faces under a directory, in a deterministic order, each file content once.

    Font directories hold the same file under several names (symlinks, duplicate packages); only
    the first path, in sorted order, of each content is kept.

    Args:
        font_dir: directory searched recursively for .ttf, .otf and .ttc files.

    Returns:
        Faces sorted by relative path and face index.

    Raises:
        FileNotFoundError: if font_dir is not a directory.
    """
    if not os.path.isdir(font_dir):
        raise FileNotFoundError(f"font directory {font_dir!r} does not exist")
    paths = []
    for root, dirs, files in os.walk(font_dir, followlinks=True):
        dirs.sort()
        paths.extend(
            os.path.join(root, f)
            for f in sorted(files)
            if f.lower().endswith(FONT_SUFFIXES)
        )
    seen = set()
    faces = []
    for path in sorted(paths, key=lambda p: os.path.relpath(p, font_dir)):
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).digest()
        if digest in seen:
            continue
        seen.add(digest)
        rel = os.path.relpath(path, font_dir)
        try:
            count = _ttc_face_count(path)
        except OSError:
            count = 1
        for index in range(count):
            faces.append(Face(path, index, rel if count == 1 else f"{rel}#{index}"))
    return faces


def is_symbol_name(name: str) -> bool:
    """Whether a family or file name marks a symbol/dingbat/barcode/segment-display/icon font.

    Args:
        name: family name, style or file name.

    Returns:
        True if the name contains one of the marker words.
    """
    return bool(_SYMBOL_NAME.search(name))


def _open(face: Face, size: int):
    """Opens a face at a pixel size with the basic layout engine (no shaping: same on every host)."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype(
            face.path, size, index=face.index, layout_engine=ImageFont.Layout.BASIC
        )
    except (OSError, ValueError) as e:
        raise FontError(f"cannot be read ({e})") from e


def family_name(face: Face) -> str:
    """Family and style of a face, as its name table gives them.

    Args:
        face: the face.

    Returns:
        "Family Style".

    Raises:
        FontError: if the file cannot be read.
    """
    family, style = _open(face, _PROBE_SIZE).getname()
    return " ".join(part for part in (family, style) if part)


def _draw(font, codepoint: int, layout: Layout, baseline: int) -> np.ndarray:
    """Draws one glyph on the supersampled canvas: baseline at row `baseline` of that canvas, ink
    centred horizontally."""
    from PIL import Image, ImageDraw

    side = layout.size * layout.supersample
    text = chr(codepoint)
    x0, _, x1, _ = font.getbbox(text, anchor="ls")
    x = round(side / 2 - (x0 + x1) / 2)
    canvas = Image.new("L", (side, side), 0)
    ImageDraw.Draw(canvas).text(
        (x, baseline),
        text,
        fill=255,
        font=font,
        anchor="ls",
    )
    return np.asarray(canvas)


def _downsample(canvas: np.ndarray, layout: Layout) -> np.ndarray:
    """Box-filters a supersampled canvas to the output size, rounding to uint8."""
    s = layout.supersample
    blocks = canvas.reshape(layout.size, s, layout.size, s).astype(np.uint32)
    total = blocks.sum(axis=(1, 3))
    return ((total + s * s // 2) // (s * s)).astype(np.uint8)


def _reference_size(face: Face, layout: Layout) -> int:
    """Pixel size at which the face's reference character is `reference_height` tall on the
    supersampled canvas (without `centre_reference`, its ink above the baseline: a descender does
    not count)."""
    probe = _open(face, _PROBE_SIZE)
    reference = chr(layout.reference)
    try:
        _, top, _, bottom = probe.getbbox(reference, anchor="ls")
    except Exception as e:  # FreeType errors surface as assorted types.
        raise FontError(
            f"cannot render the reference character {reference} ({e})"
        ) from e
    height = (bottom if layout.centre_reference else min(bottom, 0)) - top
    if height <= 0:
        raise FontError(
            f"no reference character {reference}: a symbol-only font or one without its script"
        )
    return max(
        1, round(_PROBE_SIZE * layout.reference_height * layout.supersample / height)
    )


def _baseline_row(font, layout: Layout) -> int:
    """Row of the baseline on the supersampled canvas for a face opened at its drawing size."""
    if not layout.centre_reference:
        return layout.baseline * layout.supersample
    _, top, _, bottom = font.getbbox(chr(layout.reference), anchor="ls")
    return round(layout.size * layout.supersample / 2 - (top + bottom) / 2)


def _fit_scale(font, codepoints, covered, layout: Layout, base: int) -> float:
    """Factor (<= 1) that keeps every covered glyph of the face inside the canvas, baseline at
    supersampled row `base`."""
    side = layout.size * layout.supersample
    scale = 1.0
    for codepoint, ok in zip(codepoints, covered):
        if not ok:
            continue
        x0, top, x1, bottom = font.getbbox(chr(codepoint), anchor="ls")
        if x1 - x0 > side:
            scale = min(scale, side / (x1 - x0))
        if top < -base:
            scale = min(scale, base / -top)
        if bottom > side - base:
            scale = min(scale, (side - base) / bottom)
    return scale


def render_face(
    face: Face, codepoints, layout: Layout = Layout(), case_rms: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Renders characters in one face, in the common layout, and tells which the face covers.

    A character is covered if its glyph has ink and differs from the face's .notdef glyph. A
    lower-case letter drawn as its capital (RMS difference below `case_rms`: capitals-only faces)
    counts as not covered, so those faces do not put capitals into lower-case classes; small
    capitals, being smaller in the common layout, stay. A face whose glyphs would leave the
    canvas is scaled down as a whole, keeping its layout.

    Args:
        face: the face to render.
        codepoints: sequence of C Unicode code points.
        layout: canvas geometry.
        case_rms: RMS difference ([0, 1] pixels) below which a small letter is its capital.

    Returns:
        images: uint8 [C, size, size], white ink on black (0 where not covered).
        covered: bool [C].

    Raises:
        FontError: if the face cannot be read or has no reference character.
    """
    size = _reference_size(face, layout)
    font = _open(face, size)
    try:
        base = _baseline_row(font, layout)
        missing = _draw(font, _UNMAPPED, layout, base)
        canvases = [_draw(font, c, layout, base) for c in codepoints]
        covered = np.array(
            [c.any() and not np.array_equal(c, missing) for c in canvases]
        )
        scale = _fit_scale(font, codepoints, covered, layout, base)
        if scale < 1.0:
            font = _open(face, max(1, int(size * scale)))
            base = _baseline_row(font, layout)
            canvases = [_draw(font, c, layout, base) for c in codepoints]
    except FontError:
        raise
    except Exception as e:  # FreeType errors surface as assorted types.
        raise FontError(f"rendering failed ({e})") from e
    images = np.stack([_downsample(c, layout) for c in canvases])
    images[~covered] = 0
    index = {c: i for i, c in enumerate(codepoints)}
    for i, c in enumerate(codepoints):
        partner = index.get(charset.case_partner(c))
        if partner is None or not (covered[i] and covered[partner]):
            continue
        diff = (images[i].astype(np.float32) - images[partner]) / 255.0
        if np.sqrt(np.mean(diff * diff)) < case_rms:
            covered[i] = False
            images[i] = 0
    return images, covered
