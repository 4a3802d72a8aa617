import numpy as np
import pytest

from fl_embed.models import small_cnn
from fl_embed.models.small_cnn import FEATURE_WIDTH


def test_maps_glyphs_to_a_4x4_feature_map():
    model = small_cnn()
    features = model(np.zeros((3, 32, 32, 1), np.float32), training=False)
    assert features.shape == (3, 4, 4, FEATURE_WIDTH)


def test_stays_small_enough_for_a_cpu():
    # ~0.1M parameters keeps a batch-128 training step at tens of milliseconds on 2 cores.
    assert small_cnn().count_params() < 200_000


def test_too_small_input_is_rejected():
    with pytest.raises(ValueError, match=">= 8"):
        small_cnn((4, 4, 1))
