"""Tests of data_prep.hangul: shipped file, splits, classes, renderer rules, TFDS builder, batches."""

import hashlib
import json
import logging
import os
import unicodedata

import numpy as np
import pytest

from data_prep import hangul
from data_prep.glyphs import select
from data_prep.glyphs import storage as glyph_storage
from data_prep.hangul import charset, render, storage
from tests.data_prep.files import copy_fonts, corrupted_copy

# Subsets of Noto CJK (tests/data/fonts/README.md): 40 KS X 1001 syllables and the reference.
KOREAN_FONTS = (
    "NotoSansCJKkr-Bold-hangul-subset.otf",
    "NotoSansCJKkr-Thin-hangul-subset.otf",
    "NotoSerifCJKkr-Black-hangul-subset.otf",
    "NotoSerifCJKkr-Regular-hangul-subset.otf",
)
JAPANESE_FACE = "NotoSansCJKjp-Bold-hangul-subset.otf"  # same Hangul as the KR face
MONO_CLONE = "NotoSansMonoCJKkr-Bold-hangul-subset.otf"  # same Hangul as the KR face
LATIN_FONT = "DejaVuSans-subset.ttf"
SYLLABLES = charset.KS_X_1001[:40]
SMALL = render.HangulConfig(images_per_class=2)
# Debian packages of the shipped file (data_prep/data/hangul32.json).
FONT_PACKAGE_DIR = "/usr/share/fonts/truetype/nanum"


@pytest.fixture(scope="module")
def font_dir(tmp_path_factory):
    fonts = KOREAN_FONTS + (JAPANESE_FACE, MONO_CLONE, LATIN_FONT)
    return copy_fonts(tmp_path_factory.mktemp("korean_fonts"), fonts)


@pytest.fixture(scope="module")
def rendered(font_dir):
    return render.build(font_dir, SMALL, SYLLABLES, SYLLABLES)


@pytest.fixture(scope="module")
def shipped():
    return storage.read_npz()


def test_rendering_the_test_fonts_twice_gives_byte_identical_files(
    font_dir, rendered, tmp_path
):
    again, _ = render.build(font_dir, SMALL, SYLLABLES, SYLLABLES)
    first = glyph_storage.save_npz(str(tmp_path / "a.npz"), rendered[0])
    second = glyph_storage.save_npz(str(tmp_path / "b.npz"), again)
    data = (tmp_path / "a.npz").read_bytes()
    assert data == (tmp_path / "b.npz").read_bytes()
    assert first == second == hashlib.sha256(data).hexdigest()
    assert rendered[0]["images"].max() == 255


def test_other_region_latin_and_cloned_faces_are_skipped_with_log_lines(
    font_dir, caplog
):
    # The absl logger itself: its level follows absl's verbosity, which other tests in the same
    # worker may have set.
    with caplog.at_level(logging.INFO, logger="absl"):
        arrays, summary = render.build(font_dir, SMALL, SYLLABLES, SYLLABLES)
    used = {str(name) for name in arrays["font_names"]}
    assert used == set(KOREAN_FONTS)
    assert summary["faces_other_region"] == 1
    assert summary["faces_near_duplicate"] == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any(JAPANESE_FACE in m and "another region" in m for m in messages)
    assert any(MONO_CLONE in m and "near-duplicate" in m for m in messages)
    assert any(LATIN_FONT in m and "no reference character" in m for m in messages)


def test_each_class_gets_its_own_draw_of_distinct_faces(rendered):
    arrays, _ = rendered
    per_class = {}
    for label, font in zip(arrays["labels"].tolist(), arrays["fonts"].tolist()):
        per_class.setdefault(label, []).append(font)
    assert sorted(per_class) == list(range(len(SYLLABLES)))
    assert all(len(set(f)) == len(f) == 2 for f in per_class.values())
    assert len({tuple(sorted(f)) for f in per_class.values()}) > 1


def test_random_fonts_per_class_draws_count_covering_fonts():
    covered = np.random.default_rng(4).random((30, 50)) < 0.5
    chosen = select.random_fonts_per_class(covered, count=5, seed=0)
    assert not (chosen & ~covered).any()
    assert chosen.sum(axis=0).tolist() == np.minimum(covered.sum(axis=0), 5).tolist()
    assert np.array_equal(chosen, select.random_fonts_per_class(covered, 5, seed=0))


def test_reference_syllable_is_centred_and_sized_in_every_face(font_dir):
    from data_prep.glyphs import fonts

    layout = render.LAYOUT
    for name in KOREAN_FONTS:
        face = fonts.Face(os.path.join(font_dir, name), 0, name)
        images, covered = fonts.render_face(face, [charset.REFERENCE_SYLLABLE], layout)
        rows = np.flatnonzero(images[0].max(axis=1) >= 128)
        assert covered[0]
        assert abs((rows.max() + 1 - rows.min()) - layout.reference_height) <= 1, name
        assert abs((rows.min() + rows.max() + 1) / 2 - layout.size / 2) <= 1, name


def test_non_hangul_candidates_are_refused(font_dir):
    with pytest.raises(ValueError, match="not Hangul syllables"):
        render.build(font_dir, SMALL, [*SYLLABLES, ord("A")], SYLLABLES)
    with pytest.raises(ValueError, match="not Hangul syllables"):
        render.build(font_dir, SMALL, SYLLABLES, [0x4E00])  # a Han character


def test_shipped_file_matches_its_recorded_checksum():
    with open(storage.SHIPPED.path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == storage.SHIPPED.sha256
    with open(
        os.path.splitext(storage.SHIPPED.path)[0] + ".json", encoding="utf-8"
    ) as f:
        assert json.load(f)["sha256"] == digest
    assert os.path.getsize(storage.SHIPPED.path) < 4 * 2**20


def test_a_corrupted_file_is_refused(tmp_path):
    path = corrupted_copy(storage.SHIPPED.path, tmp_path / "hangul32.npz", 3, 0x01)
    with pytest.raises(glyph_storage.ChecksumError, match="sha256"):
        storage.read_npz(path)
    with pytest.raises(FileNotFoundError, match="data_prep.hangul.render"):
        storage.read_npz(str(tmp_path / "missing.npz"))


def test_every_class_is_a_ks_x_1001_hangul_syllable(shipped):
    codepoints = shipped["codepoints"].tolist()
    assert len(codepoints) == hangul.NUM_CLASSES == 2350
    assert codepoints == sorted(set(codepoints))
    for c in codepoints:
        assert unicodedata.name(chr(c)).startswith("HANGUL SYLLABLE ")
        encoded = chr(c).encode(
            "euc_kr"
        )  # KS X 1001's Hangul: rows 0xB0-0xC8 of EUC-KR
        assert len(encoded) == 2 and 0xB0 <= encoded[0] <= 0xC8


def test_images_per_class_are_the_documented_number_from_distinct_faces(shipped):
    counts = np.bincount(shipped["labels"], minlength=hangul.NUM_CLASSES)
    assert counts.min() == counts.max() == hangul.IMAGES_PER_CLASS
    assert 4 <= hangul.IMAGES_PER_CLASS <= 7  # SOP averages 5.3 images a class
    pairs = set(zip(shipped["labels"].tolist(), shipped["fonts"].tolist()))
    assert len(pairs) == len(shipped["labels"])
    assert (
        shipped["images"].shape[1:] == (32, 32) and shipped["images"].dtype == np.uint8
    )


def test_train_and_test_classes_are_disjoint_halves():
    train_x, train_y = hangul.load_arrays("train")
    test_x, test_y = hangul.load_arrays("test")
    assert train_x.shape[1:] == test_x.shape[1:] == (32, 32, 1)
    assert not set(train_y.tolist()) & set(test_y.tolist())
    assert set(train_y.tolist()) | set(test_y.tolist()) == set(
        range(hangul.NUM_CLASSES)
    )
    assert len(set(train_y.tolist())) == len(set(test_y.tolist())) == 1175
    with pytest.raises(ValueError, match="unknown split"):
        hangul.load_arrays("validation")


def test_tfds_builder_prepares_offline_and_serves_the_test_classes(tmp_path):
    import data_prep

    dataset = data_prep.load("hangul", "test", data_dir=str(tmp_path))
    spec = dataset.element_spec
    assert spec[0].shape == (32, 32, 1) and spec[0].dtype.name == "uint8"
    images, labels = zip(*((x.numpy(), int(y)) for x, y in dataset))
    expected_x, expected_y = hangul.load_arrays("test")
    order = np.lexsort((np.arange(len(labels)), labels))
    assert np.array_equal(np.array(labels)[order], np.sort(expected_y, kind="stable"))
    assert {x.tobytes() for x in images} == {x.tobytes() for x in expected_x}


def test_class_ratio_batches_hold_96_train_classes_of_128_examples():
    import data_prep

    _, train_y = hangul.load_arrays("train")
    batches = data_prep.class_ratio_batches("hangul", num_batches=2, seed=1)
    for images, labels in batches:
        labels = labels.numpy()
        assert images.shape == (128, 32, 32, 1) and len(set(labels.tolist())) == 96
        assert set(labels.tolist()) <= set(train_y.tolist())


def test_config_is_the_sop_regime():
    from experiments import configs

    config = configs.get_config("hangul")
    assert config.batch_size == 128 and config.classes_per_batch_ratio == 0.75
    assert (
        config.ks == (1, 10, 100) and config.image_size == 32 and config.channels == 1
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.isdir(FONT_PACKAGE_DIR), reason="Debian's Korean font packages missing"
)
def test_shipped_file_is_regenerated_byte_for_byte(tmp_path):
    arrays, summary = render.build("/usr/share/fonts")
    sha256 = glyph_storage.save_npz(str(tmp_path / "hangul32.npz"), arrays)
    assert sha256 == storage.SHIPPED.sha256, summary
