"""Glyph data set: characters rendered in real fonts, split by class (issue 5).

`load_arrays` needs only numpy; `load` (tf.data through the TFDS builder) imports TensorFlow and
TensorFlow Datasets when called; rendering (`data_prep.glyphs.render`) needs Pillow. The Hangul
set (`data_prep.hangul`) is served by the same code, `data_prep.glyphs.shipped.ShippedSet`.
"""

from data_prep.glyphs import storage
from data_prep.glyphs.shipped import ShippedSet

IMAGE_SIZE = 32
NUM_CLASSES = 164
SPLITS = storage.SPLITS
# C/m as for CUB-200-2011: 32 of the 82 train classes per batch of 128.
DEFAULT_RATIO = 0.25

GLYPHS = ShippedSet(
    NUM_CLASSES, storage.SHIPPED, "data_prep.glyphs.builder:Glyphs", DEFAULT_RATIO, {}
)
load_arrays = GLYPHS.load_arrays
load = GLYPHS.load
class_ratio_batches = GLYPHS.class_ratio_batches
