"""Selection rules of the glyph data set, on rendered arrays (numpy only).

All images here are renders of F fonts x C classes, uint8 with ink 255, flattened to P pixels; RMS
differences are on the [0, 1] pixel scale.
"""

import numpy as np


def _unit_scale(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1], flattened after the leading axes they keep."""
    return images.astype(np.float32) / 255.0


def rms_to_rows(candidate: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """RMS pixel difference between one flattened image set and each row of a stack of them.

    Args:
        candidate: float [D], pixels in [0, 1].
        rows: float [K, D].

    Returns:
        float [K]: sqrt(mean((rows[k] - candidate)**2)).
    """
    if rows.shape[0] == 0:
        return np.zeros((0,), np.float32)
    return np.sqrt(np.mean(np.square(rows - candidate[None, :]), axis=1))


def near_duplicates(signatures: np.ndarray, threshold: float) -> np.ndarray:
    """Marks fonts whose rendered alphabet is within `threshold` RMS of an earlier kept font.

    Greedy in the given order: the first font of a group of clones is kept, and a font is compared
    only with fonts already kept.

    Args:
        signatures: uint8 [F, ...], each font's renders of the same fixed alphabet.
        threshold: RMS difference below which two fonts count as the same design.

    Returns:
        int [F]: -1 for a kept font, else the index of the kept font it duplicates.
    """
    flat = _unit_scale(signatures.reshape(signatures.shape[0], -1))
    duplicate_of = np.full(flat.shape[0], -1, np.int64)
    kept: list[int] = []
    for i in range(flat.shape[0]):
        rms = rms_to_rows(flat[i], flat[kept])
        if rms.size and rms.min() < threshold:
            duplicate_of[i] = kept[int(np.argmin(rms))]
        else:
            kept.append(i)
    return duplicate_of


def consensus_scores(images: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Per font, the share of its glyphs that are nearest (cosine) to their own class's mean glyph.

    A text face scores near 1; a dingbat or barcode face that maps pictures onto letter code points
    scores near 0, as its glyphs resemble no class mean.

    Args:
        images: uint8 [F, C, ...], renders of the consensus alphabet.
        covered: bool [F, C].

    Returns:
        float [F] in [0, 1]; 0 for a font that covers none of the classes.
    """
    flat = _unit_scale(images.reshape(images.shape[0], images.shape[1], -1))
    weights = covered[:, :, None].astype(np.float32)
    means = (flat * weights).sum(axis=0) / np.maximum(weights.sum(axis=0), 1.0)
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    similarity = np.einsum("fcp,kp->fck", flat, means)
    hits = (
        np.argmax(similarity, axis=2) == np.arange(flat.shape[1])[None, :]
    ) & covered
    return hits.sum(axis=1) / np.maximum(covered.sum(axis=1), 1)


def pairwise_class_rms(images: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Median over fonts of the RMS difference between every two classes drawn in the same font.

    Args:
        images: uint8 [F, C, ...].
        covered: bool [F, C].

    Returns:
        float [C, C], symmetric; NaN where no font covers both classes, 0 on the diagonal.
    """
    f, c = images.shape[:2]
    flat = _unit_scale(images.reshape(f, c, -1))
    pixels = flat.shape[2]
    sq = np.einsum("fcp,fcp->fc", flat, flat)
    gram = np.einsum("fcp,fkp->fck", flat, flat)
    rms = np.sqrt(np.maximum(sq[:, :, None] + sq[:, None, :] - 2 * gram, 0.0) / pixels)
    both = covered[:, :, None] & covered[:, None, :]
    rms = np.where(both, rms, np.nan)
    out = np.full((c, c), np.nan, np.float32)
    shared = both.any(axis=0)
    out[shared] = np.nanmedian(rms[:, shared], axis=0)
    np.fill_diagonal(out, 0.0)
    return out


def alias_classes(class_rms: np.ndarray, threshold: float) -> dict[int, int]:
    """Classes that look like an earlier class, to be dropped so one code point of each shape is kept.

    Classes are taken in order (the renderer orders them by code point, Latin before Greek before
    Cyrillic); a class whose median same-font RMS to an earlier kept class is below `threshold` is an
    alias of it.

    Args:
        class_rms: float [C, C] from `pairwise_class_rms`.
        threshold: RMS below which two classes are the same shape.

    Returns:
        {dropped class index: kept class index it aliases}.
    """
    aliases: dict[int, int] = {}
    kept: list[int] = []
    for j in range(class_rms.shape[0]):
        row = class_rms[j, kept] if kept else np.zeros((0,))
        close = np.flatnonzero(np.nan_to_num(row, nan=np.inf) < threshold)
        if close.size:
            aliases[j] = kept[int(close[np.argmin(row[close])])]
        else:
            kept.append(j)
    return aliases


def fonts_per_class(
    covered: np.ndarray, max_fonts: int | None, seed: int
) -> np.ndarray:
    """Chooses which fonts give an example of each class, at most `max_fonts` per class.

    Fonts are visited in one seeded random order, the same for every class, so classes share fonts
    where they can and the choice does not favour fonts early in the directory listing.

    Args:
        covered: bool [F, C].
        max_fonts: cap on examples per class; None keeps every covering font.
        seed: seed of the font order.

    Returns:
        bool [F, C], a subset of `covered`.
    """
    if max_fonts is None:
        return covered.copy()
    order = np.random.default_rng(seed).permutation(covered.shape[0])
    rank = np.cumsum(covered[order], axis=0)
    chosen = np.zeros_like(covered)
    chosen[order] = covered[order] & (rank <= max_fonts)
    return chosen


def random_fonts_per_class(covered: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Chooses `count` covering fonts for each class, drawn afresh for every class.

    Unlike `fonts_per_class`, classes do not share one font order: each class is seen through its
    own few designs, as each product of Stanford Online Products is seen in its own few photos.

    Args:
        covered: bool [F, C].
        count: fonts per class (all covering fonts where fewer cover the class).
        seed: seed of the draws; classes are drawn in order.

    Returns:
        bool [F, C], a subset of `covered`.
    """
    rng = np.random.default_rng(seed)
    chosen = np.zeros_like(covered)
    for c in range(covered.shape[1]):
        candidates = np.flatnonzero(covered[:, c])
        pick = rng.choice(candidates, size=min(count, candidates.size), replace=False)
        chosen[pick, c] = True
    return chosen
