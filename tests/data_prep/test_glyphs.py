"""Tests of data_prep.glyphs: renderer rules, shipped file, splits, TFDS builder, augmentation."""

import hashlib
import json
import logging
import os
import shutil
import unicodedata

import numpy as np
import pytest

from data_prep import glyphs
from data_prep.glyphs import baseline, fonts, render, select, storage
from tests.data_prep.files import FONT_DIR, copy_fonts, corrupted_copy

TEXT_FONTS = (
    "DejaVuSans-subset.ttf",
    "DejaVuSerif-Bold-subset.ttf",
    "LiberationMono-Regular-subset.ttf",
)
SYMBOL_ONLY_FONT = "DejaVuSans-pictures-subset.ttf"
SMALL = render.RenderConfig(min_fonts=2, max_fonts=None)

# Unicode confusables across Latin, Greek and Cyrillic, written out by hand: at most one of each
# group may be a class.
CONFUSABLE_GROUPS = [
    "AΑА", "BΒВ", "EΕЕ", "HΗН", "KΚК", "MΜМ", "OΟО", "PΡР", "TΤТ", "XΧХ", "ZΖ", "IΙ", "NΝ", "YΥ",
    "CС", "ΓГ", "ΠП", "oοо", "aа", "eе", "pр", "cс", "xх", "yу",
]  # fmt: skip


@pytest.fixture(scope="module")
def text_font_dir(tmp_path_factory):
    return copy_fonts(tmp_path_factory.mktemp("fonts"), TEXT_FONTS)


@pytest.fixture(scope="module")
def rendered(text_font_dir):
    return render.build(text_font_dir, SMALL)


@pytest.fixture(scope="module")
def shipped():
    return storage.read_npz()


def test_rendering_same_fonts_gives_byte_identical_file(
    text_font_dir, rendered, tmp_path
):
    again, _ = render.build(text_font_dir, SMALL)
    first = storage.save_npz(str(tmp_path / "a.npz"), rendered[0])
    second = storage.save_npz(str(tmp_path / "b.npz"), again)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert (
        first == second == hashlib.sha256((tmp_path / "a.npz").read_bytes()).hexdigest()
    )
    assert rendered[0]["images"].max() == 255


def test_rendering_keeps_every_text_font_and_one_example_per_font_and_class(rendered):
    arrays, summary = rendered
    assert summary["faces_used"] == len(TEXT_FONTS)
    pairs = set(zip(arrays["labels"].tolist(), arrays["fonts"].tolist()))
    assert len(pairs) == len(arrays["labels"])


def test_rendering_drops_cross_script_aliases_keeping_the_lowest_code_point(rendered):
    kept = {chr(c) for c in rendered[0]["codepoints"]}
    for latin, greek, cyrillic in ("AΑА", "HΗН", "PΡР"):
        assert latin in kept and greek not in kept and cyrillic not in kept
    assert {"Ж", "λ", "Ω", "g"} <= kept


def test_common_layout_keeps_case_and_punctuation_apart(rendered):
    arrays = rendered[0]
    images = {}
    for ch in "Oo-_,'":
        label = int(np.flatnonzero(arrays["codepoints"] == ord(ch))[0])
        images[ch] = arrays["images"][
            (arrays["labels"] == label) & (arrays["fonts"] == 0)
        ][0]
    rows = {ch: np.flatnonzero(im.max(axis=1) > 127) for ch, im in images.items()}
    assert (
        rows["O"].min() < rows["o"].min()
    )  # the capital is taller than the small letter
    assert (
        rows["-"].max() < rows["_"].min()
    )  # hyphen above the baseline, underscore below
    assert rows["'"].max() < rows[","].min()  # apostrophe high, comma low


def test_broken_and_symbol_only_fonts_are_skipped_with_a_log_line(tmp_path, caplog):
    copy_fonts(tmp_path, TEXT_FONTS + (SYMBOL_ONLY_FONT,))
    (tmp_path / "broken.ttf").write_bytes(b"not a font" * 100)
    shutil.copy(os.path.join(FONT_DIR, TEXT_FONTS[0]), tmp_path / "FixtureDingbats.ttf")
    # The absl logger itself: its level follows absl's verbosity, which other tests in the same
    # worker may have set.
    with caplog.at_level(logging.INFO, logger="absl"):
        arrays, summary = render.build(str(tmp_path), SMALL)
    assert (
        summary["faces_found"] == len(TEXT_FONTS) + 2
    )  # the dingbats copy repeats a file's bytes
    assert summary["faces_used"] == len(TEXT_FONTS)
    assert not any(
        SYMBOL_ONLY_FONT in str(name) or "broken" in str(name)
        for name in arrays["font_names"]
    )
    assert any(
        "broken.ttf" in r.getMessage() and "cannot be read" in r.getMessage()
        for r in caplog.records
    )
    assert any(
        SYMBOL_ONLY_FONT in r.getMessage() and "symbol-only" in r.getMessage()
        for r in caplog.records
    )


def test_symbol_font_names_are_recognised():
    for name in (
        "Wingdings",
        "OpenSymbol",
        "Font Awesome 5 Free",
        "DSEG7 Classic",
        "Libre Barcode 39",
    ):
        assert fonts.is_symbol_name(name), name
    for name in (
        "DejaVu Sans",
        "Liberation Mono",
        "Computer Modern Unicode Serif",
        "Symphony",
    ):
        assert not fonts.is_symbol_name(name), name


def test_capitals_only_font_does_not_fill_lower_case_classes():
    face = fonts.Face(os.path.join(FONT_DIR, TEXT_FONTS[0]), 0, "sans")
    codepoints = [ord("A"), ord("a")]
    _, covered = fonts.render_face(face, codepoints)
    assert covered.all()
    _, covered = fonts.render_face(
        face, codepoints, case_rms=1.1
    )  # every small letter "is" its capital
    assert covered.tolist() == [True, False]


def test_near_duplicates_matches_brute_force():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (4, 3, 8, 8)).astype(np.uint8)
    clone = np.clip(base[1].astype(int) + 3, 0, 255).astype(np.uint8)  # RMS about 0.012
    signatures = np.concatenate([base, clone[None]])
    duplicate_of = select.near_duplicates(signatures, threshold=0.05)
    x = signatures.reshape(5, -1) / 255.0
    brute = [[np.sqrt(np.mean((x[i] - x[j]) ** 2)) for j in range(5)] for i in range(5)]
    assert (
        brute[4][1] < 0.05
        and min(brute[i][j] for i in range(4) for j in range(4) if i != j) > 0.05
    )
    assert duplicate_of.tolist() == [-1, -1, -1, -1, 1]


def test_consensus_score_flags_a_font_with_pictures_on_letter_code_points():
    rng = np.random.default_rng(1)
    prototypes = rng.integers(0, 256, (20, 16)).astype(np.float32)
    text = np.clip(prototypes[None] + rng.normal(0, 20, (5, 20, 16)), 0, 255)
    pictures = rng.integers(0, 256, (1, 20, 16))
    images = np.concatenate([text, pictures]).astype(np.uint8)
    scores = select.consensus_scores(images, np.ones((6, 20), bool))
    assert scores[:5].min() == 1.0 and scores[5] < 0.3


def test_fonts_per_class_caps_each_class_within_coverage():
    covered = np.random.default_rng(2).random((40, 5)) < 0.6
    chosen = select.fonts_per_class(covered, max_fonts=10, seed=0)
    assert not (chosen & ~covered).any()
    assert chosen.sum(axis=0).tolist() == np.minimum(covered.sum(axis=0), 10).tolist()


def test_shipped_file_matches_its_recorded_checksum():
    with open(storage.SHIPPED_FILE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == storage.SHIPPED_SHA256
    with open(
        os.path.splitext(storage.SHIPPED_FILE)[0] + ".json", encoding="utf-8"
    ) as f:
        assert json.load(f)["sha256"] == digest


def test_a_changed_file_is_refused(tmp_path):
    path = corrupted_copy(storage.SHIPPED_FILE, tmp_path / "glyphs32.npz", 2, 0xFF)
    with pytest.raises(storage.ChecksumError, match="sha256"):
        storage.read_npz(path)


def test_shipped_file_has_the_advertised_shape(shipped):
    assert len(shipped["codepoints"]) == glyphs.NUM_CLASSES
    assert shipped["images"].shape[1:] == (glyphs.IMAGE_SIZE, glyphs.IMAGE_SIZE)
    counts = np.bincount(shipped["labels"], minlength=glyphs.NUM_CLASSES)
    assert counts.min() >= 50 and len(shipped["font_names"]) >= 100
    assert np.all(np.diff(shipped["codepoints"]) > 0)


def test_train_and_test_classes_are_disjoint_halves():
    train_x, train_y = glyphs.load_arrays("train")
    _, test_y = glyphs.load_arrays("test")
    assert (
        train_x.dtype == np.uint8
        and train_x.shape[1:] == (32, 32, 1)
        and train_y.dtype == np.int64
    )
    assert not set(train_y.tolist()) & set(test_y.tolist())
    assert set(train_y.tolist()) | set(test_y.tolist()) == set(
        range(glyphs.NUM_CLASSES)
    )
    assert max(train_y) < min(test_y)
    assert abs(len(set(train_y.tolist())) - len(set(test_y.tolist()))) <= 1


def test_unknown_split_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        glyphs.load_arrays("validation")
    with pytest.raises(ValueError, match="unknown split"):
        glyphs.load("val")


def test_no_class_is_a_known_confusable_of_another(shipped):
    classes = {chr(c) for c in shipped["codepoints"]}
    for group in CONFUSABLE_GROUPS:
        assert len(classes & set(group)) <= 1, group
    scripts = {unicodedata.name(c).split()[0] for c in classes}
    assert {"LATIN", "DIGIT", "GREEK", "CYRILLIC"} <= scripts


def test_no_two_classes_look_alike_in_the_same_fonts(shipped):
    num_fonts, num_classes = len(shipped["font_names"]), len(shipped["codepoints"])
    dense = np.zeros((num_fonts, num_classes, 32 * 32), np.float32)
    present = np.zeros((num_fonts, num_classes), bool)
    dense[shipped["fonts"], shipped["labels"]] = (
        shipped["images"].reshape(-1, 32 * 32) / 255.0
    )
    present[shipped["fonts"], shipped["labels"]] = True
    closest = np.inf
    for a in range(num_classes):
        both = present[:, a : a + 1] & present[:, a + 1 :]
        rms = np.sqrt(np.mean((dense[:, a : a + 1] - dense[:, a + 1 :]) ** 2, axis=2))
        medians = [
            np.median(rms[both[:, j], j])
            for j in range(both.shape[1])
            if both[:, j].sum() >= 5
        ]
        closest = min([closest, *medians])
    assert closest >= 0.05


def test_tfds_builder_prepares_offline_and_serves_the_test_classes(tmp_path):
    dataset = glyphs.load("test", data_dir=str(tmp_path))
    spec = dataset.element_spec
    assert (
        spec[0].shape == (32, 32, 1)
        and spec[0].dtype.name == "uint8"
        and spec[1].dtype.name == "int64"
    )
    labels = np.array([int(label) for _, label in dataset])
    _, expected = glyphs.load_arrays("test")
    assert np.array_equal(np.sort(labels), np.sort(expected))


def test_augmentation_with_zero_ranges_is_the_identity():
    from data_prep.glyphs import augment

    image, _ = glyphs.load_arrays("train")
    out = augment.augment(image[5], np.array([1, 2]), 0.0, 0.0, 0.0, 0.0)
    assert np.array_equal(out.numpy(), image[5])


def test_augmentation_repeats_under_a_seed_and_changes_images():
    import tensorflow as tf

    from data_prep.glyphs import augment

    images, labels = glyphs.load_arrays("train")
    source = tf.data.Dataset.from_tensor_slices((images[:16], labels[:16]))
    first = np.stack([x.numpy() for x, _ in augment.augment_dataset(source, seed=3)])
    second = np.stack([x.numpy() for x, _ in augment.augment_dataset(source, seed=3)])
    other = np.stack([x.numpy() for x, _ in augment.augment_dataset(source, seed=4)])
    assert first.shape == images[:16].shape and first.dtype == np.uint8
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)
    assert (first != images[:16]).any(axis=(1, 2, 3)).all()


def test_pixel_embeddings_are_unit_rows_of_the_flattened_image():
    from sklearn.preprocessing import normalize

    images = np.random.default_rng(3).integers(0, 256, (7, 32, 32, 1)).astype(np.uint8)
    expected = normalize(images.reshape(7, -1).astype(np.float64))
    np.testing.assert_allclose(baseline.pixel_embeddings(images), expected, rtol=1e-5)
