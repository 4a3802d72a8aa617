"""Classes of the Hangul data set and the fixed alphabets the renderer measures faces by.

Only precomposed Hangul syllables (U+AC00-U+D7A3) are candidates: no Han characters, jamo or
Latin, though most Korean fonts hold them.
"""

FIRST_SYLLABLE, LAST_SYLLABLE = 0xAC00, 0xD7A3


def _ks_x_1001_syllables() -> tuple[int, ...]:
    """The 2,350 syllables of KS X 1001 (rows 16-40 of its EUC-KR encoding), in code point order."""
    return tuple(
        sorted(
            ord(bytes([row, cell]).decode("euc_kr"))
            for row in range(0xB0, 0xC9)
            for cell in range(0xA1, 0xFF)
        )
    )


# The common syllables of Korean text, which every Korean font covers; the candidates.
KS_X_1001 = _ks_x_1001_syllables()
# Its ink box sets each face's scale and vertical place: a tall, wide syllable (initial, vowel
# to the right, final), so most syllables of a face fit around it.
REFERENCE_SYLLABLE = ord("한")
# Every 25th KS X 1001 syllable: the alphabet faces are compared (near-duplicates) and scored
# (looks like its syllables) on, 94 syllables spread over every initial consonant.
SELECTION = KS_X_1001[::25]


def is_hangul_syllable(codepoint: int) -> bool:
    """Whether a code point is a precomposed Hangul syllable (U+AC00-U+D7A3).

    Args:
        codepoint: Unicode code point.

    Returns:
        True inside the Hangul Syllables block.
    """
    return FIRST_SYLLABLE <= codepoint <= LAST_SYLLABLE
