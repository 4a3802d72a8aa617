"""Mock paper data: `tfds.testing.mock_data` with the real builders' feature specs.

For tests and benchmarks without the archives (and for users testing a trainer before downloading).

TFDS's default mock draws labels at random and, for builders with a BBox feature (CUB, Cars),
random boxes with min > max that its own encoder rejects on the encoded paths (SkipDecoding,
data sources). Here every example is built from the builder's real `info.features` and encoded by
them; class labels are spread evenly over [0, num_classes) so both class halves are present, with
`per_class` examples per class.
"""

import contextlib
import io

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds


def fake_labels(num_examples: int, num_classes: int, per_class: int) -> np.ndarray:
    """Labels spread evenly over [0, num_classes), `per_class` consecutive examples each."""
    distinct = -(-num_examples // per_class)
    spread = np.unique(
        np.linspace(0, num_classes - 1, distinct).round().astype(np.int64)
    )
    return spread[(np.arange(num_examples) // per_class) % len(spread)]


def _fake_image(index: int, size: tuple[int, int], channels: int):
    """A random image of about `size`; 3-channel images as JPEG like the real archives."""
    rng = np.random.default_rng(index)
    shape = (size[0] + index % 5, size[1] + index % 3, channels)
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    if channels != 3:
        return pixels
    return io.BytesIO(tf.io.encode_jpeg(pixels).numpy())


def _fake_value(feature, index: int, label: int, image_size: tuple[int, int]):
    """A valid raw value of one feature for example `index`."""
    if isinstance(feature, tfds.features.ClassLabel):
        return int(label % feature.num_classes)
    if isinstance(feature, tfds.features.Image):
        return _fake_image(index, image_size, feature.shape[-1] or 3)
    if isinstance(feature, tfds.features.BBoxFeature):
        return tfds.features.BBox(ymin=0.1, xmin=0.2, ymax=0.8, xmax=0.9)
    if isinstance(feature, tfds.features.Text):
        return f"example_{index}"
    raise TypeError(f"No fake value for feature {feature!r}")


def _encoded_examples(
    features,
    num_examples: int,
    per_class: int,
    image_size: tuple[int, int],
    first_image: int = 0,
) -> list[dict]:
    """Fake examples for a FeaturesDict, encoded by it; images seeded from `first_image` on."""
    label_feature = next(
        f for f in features.values() if isinstance(f, tfds.features.ClassLabel)
    )
    labels = fake_labels(num_examples, label_feature.num_classes, per_class)
    return [
        features.encode_example(
            {
                k: _fake_value(f, first_image + i, int(labels[i]), image_size)
                for k, f in features.items()
            }
        )
        for i in range(num_examples)
    ]


def _pooled_examples(
    features, split: str, num_examples: int, per_class: int, image_size: tuple[int, int]
) -> list[dict]:
    """Examples of a split string such as 'train+test': each part gets its own images, same labels."""
    examples = []
    for part, _ in enumerate(str(split).split("+")):
        examples += _encoded_examples(
            features, num_examples, per_class, image_size, part * num_examples
        )
    return examples


@contextlib.contextmanager
def mock_paper_data(
    num_examples: int = 400, per_class: int = 4, image_size: tuple[int, int] = (24, 30)
):
    """Mocks `tfds` datasets and data sources with examples of the real feature specs.

    Args:
      num_examples: examples per TFDS split. Every split has the same labels (as CUB's and Cars'
        TFDS splits both hold every class) but its own images; 'train+test' yields both.
      per_class: examples per class and split.
      image_size: approximate (height, width) of the images (real CUB images are about 375x500).

    Yields:
      None.
    """

    def as_dataset(
        self, split, decoders=None, read_config=None, shuffle_files=False, **kwargs
    ):
        del read_config, shuffle_files, kwargs
        features = self.info.features
        encoded = _pooled_examples(features, split, num_examples, per_class, image_size)
        columns = {k: np.stack([e[k] for e in encoded]) for k in encoded[0]}
        ds = tf.data.Dataset.from_tensor_slices(columns)
        return ds.map(lambda ex: features.decode_example(ex, decoders=decoders))

    def as_data_source(self, split, decoders=None, **kwargs):
        del kwargs
        features = self.info.features
        skipped = set(decoders or {})
        return [
            {
                k: v if k in skipped else features[k].decode_example_np(v)
                for k, v in encoded.items()
            }
            for encoded in _pooled_examples(
                features, split, num_examples, per_class, image_size
            )
        ]

    with tfds.testing.mock_data(
        as_dataset_fn=as_dataset, as_data_source_fn=as_data_source
    ):
        yield
