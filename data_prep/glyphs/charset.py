"""Candidate characters of the glyph data set and the fixed alphabets the renderer measures fonts by."""

# Printable ASCII, then the basic Greek and Cyrillic alphabets. Cross-script look-alikes (Latin A,
# Greek Alpha, Cyrillic A) are all candidates here: the renderer drops the later code point of each
# pair that renders alike in most fonts, so the lowest code point (Latin before Greek before Cyrillic)
# is the one kept.
ASCII_PRINTABLE = tuple(range(0x21, 0x7F))
# Capitals U+0391-U+03A9 (U+03A2 is unassigned) and small letters U+03B1-U+03C9, no accented forms.
GREEK = tuple(c for c in range(0x0391, 0x03AA) if c != 0x03A2) + tuple(
    range(0x03B1, 0x03CA)
)
CYRILLIC = tuple(range(0x0410, 0x0450))
CANDIDATES = ASCII_PRINTABLE + GREEK + CYRILLIC

# A font must cover these to take part: they carry the reference capital, and the near-duplicate test
# compares fonts on them (lower case is optional, as capitals-only display faces are common).
REFERENCE_CAPITAL = ord("H")
REQUIRED = tuple(range(ord("A"), ord("Z") + 1)) + tuple(range(ord("0"), ord("9") + 1))
# The alphabet the look-like-its-character test (glyph consensus) scores fonts on.
CONSENSUS = REQUIRED + tuple(range(ord("a"), ord("z") + 1))


def case_partner(codepoint: int) -> int | None:
    """Upper-case partner of a lower-case letter, if it is a single code point.

    Args:
        codepoint: Unicode code point.

    Returns:
        The code point of its upper-case form, or None when the character has no distinct
        single-code-point upper case (digits, punctuation, capitals).
    """
    upper = chr(codepoint).upper()
    if len(upper) != 1 or upper == chr(codepoint):
        return None
    return ord(upper)


# Cross-script look-alikes (after Unicode's confusables list, restricted to these alphabets): the
# same shape in most type designs, though the pixel rule alone misses some because a few designs
# draw them apart (Cyrillic К with a curved arm, Greek ν with a round base).
LOOKALIKES = (
    "AΑА", "BΒВ", "CС", "EΕЕ", "HΗН", "IΙ", "KΚК", "MΜМ", "NΝ", "OΟО", "PΡР", "TΤТ", "XΧХ", "YΥ",
    "ZΖ", "3З", "ΓГ", "ΠП", "ΦФ", "aа", "cс", "eе", "oοо", "pρр", "rг", "uυ", "vν", "xх", "yу",
    "κк", "τт",
)  # fmt: skip


def curated_aliases(codepoints) -> dict[int, int]:
    """Classes to drop as look-alikes of an earlier class, by the `LOOKALIKES` table.

    Args:
        codepoints: sequence of C code points (class order).

    Returns:
        {dropped class index: kept class index}; in each group the lowest code point present stays.
    """
    index = {c: i for i, c in enumerate(codepoints)}
    aliases = {}
    for group in LOOKALIKES:
        present = sorted(ord(ch) for ch in group if ord(ch) in index)
        for dropped in present[1:]:
            aliases[index[dropped]] = index[present[0]]
    return aliases
