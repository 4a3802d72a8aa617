"""The one list of backbones: name -> builder, default input shape, pixel scaling, pretrained loader.

Everything that offers a choice of backbone (`build_embedder`, `preprocess_for`, the trainer's
`--backbone` flag, the benchmarks) reads `BACKBONE_SPECS`; adding a backbone is one entry here plus
its module. The embedding head attaches to the backbone's output, and the backbone is the layer
named `BACKBONE_LAYER` of every embedder.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import keras

from fl_embed.models.bn_inception import bn_inception
from fl_embed.models.inception_v2 import inception_v2, inception_v2_pretrained
from fl_embed.models.inception_v3 import inception_v3, inception_v3_pretrained
from fl_embed.models.small_cnn import small_cnn

# Name of the backbone inside every embedder, for `model.get_layer(BACKBONE_LAYER)`.
BACKBONE_LAYER = "backbone"


class BackboneSpec(NamedTuple):
    """How to build one backbone and feed it."""

    # build(input_shape) -> randomly initialised keras.Model [b, H, W, C] -> [b, h, w, channels]
    build: Callable[[tuple[int, int, int]], keras.Model]
    input_shape: tuple[
        int, int, int
    ]  # default (H, W, C): the paper's 227 crop, or the glyph size
    scaling: str  # key of `fl_embed.models.SCALINGS` it was built (and pretrained) for
    # pretrained(input_shape, weights) for weights other than None and a Keras .h5 file
    # ("imagenet", a checkpoint); None: the backbone has no such weights
    pretrained: Callable[[tuple[int, int, int], str], keras.Model] | None = None


def _named(fn: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
    """`fn` building its model under the name `BACKBONE_LAYER`."""
    return functools.partial(fn, name=BACKBONE_LAYER)


BACKBONE_SPECS: dict[str, BackboneSpec] = {
    "inception_v2": BackboneSpec(
        _named(inception_v2),
        (227, 227, 3),
        "inception",
        _named(inception_v2_pretrained),
    ),
    "inception_v3": BackboneSpec(
        _named(inception_v3),
        (227, 227, 3),
        "inception",
        _named(inception_v3_pretrained),
    ),
    "bn_inception": BackboneSpec(_named(bn_inception), (227, 227, 3), "inception"),
    "small_cnn": BackboneSpec(_named(small_cnn), (32, 32, 1), "unit"),
}
BACKBONES: tuple[str, ...] = tuple(BACKBONE_SPECS)


def get_backbone(name: str) -> BackboneSpec:
    """The `BackboneSpec` of `name`; ValueError naming the choices otherwise."""
    if name not in BACKBONE_SPECS:
        raise ValueError(f"Unknown backbone {name!r}; use one of {BACKBONES}.")
    return BACKBONE_SPECS[name]
