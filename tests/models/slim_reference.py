"""An independent TF1-style graph of TF-slim's inception_v2 base, and checkpoints written from it.

Built from `tf.nn` ops and `tf.compat.v1` variable scopes following tensorflow/models
`research/slim/nets/inception_v2.py` (`inception_v2_base` to Mixed_5c) under
`inception_utils.inception_arg_scope()`: names come from the scopes, as slim's do, and the
checkpoints are written by `tf.compat.v1.train.Saver` in the V1 or V2 format. Nothing here imports
fl_embed. Variables get random values, batch-norm moving statistics included, so a load that
drops, swaps or transposes anything shows in the outputs.
"""

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1
EPSILON = 0.001

# slim's blocks as its code lists them: branch -> [(scope, op, kernel, stride)], op "conv" =
# slim.conv2d (no bias, batch norm, ReLU), "max" = 3x3 max pooling, "pool" = the block's own 3x3
# pooling (avg, or max in Mixed_5c).
_MODULE = {
    "Branch_0": [("Conv2d_0a_1x1", "conv", 1, 1)],
    "Branch_1": [("Conv2d_0a_1x1", "conv", 1, 1), ("Conv2d_0b_3x3", "conv", 3, 1)],
    "Branch_2": [
        ("Conv2d_0a_1x1", "conv", 1, 1),
        ("Conv2d_0b_3x3", "conv", 3, 1),
        ("Conv2d_0c_3x3", "conv", 3, 1),
    ],
    "Branch_3": [("pooling", "pool", 3, 1), ("Conv2d_0b_1x1", "conv", 1, 1)],
}
_REDUCTION = {
    "Branch_0": [("Conv2d_0a_1x1", "conv", 1, 1), ("Conv2d_1a_3x3", "conv", 3, 2)],
    "Branch_1": [
        ("Conv2d_0a_1x1", "conv", 1, 1),
        ("Conv2d_0b_3x3", "conv", 3, 1),
        ("Conv2d_1a_3x3", "conv", 3, 2),
    ],
    "Branch_2": [("MaxPool_1a_3x3", "max", 3, 2)],
}
# (scope, layout, the depth() of each slim.conv2d call in the order of the code, pooling).
_BLOCKS = [
    ("Mixed_3b", _MODULE, (64, 64, 64, 64, 96, 96, 32), "avg"),
    ("Mixed_3c", _MODULE, (64, 64, 96, 64, 96, 96, 64), "avg"),
    ("Mixed_4a", _REDUCTION, (128, 160, 64, 96, 96), None),
    ("Mixed_4b", _MODULE, (224, 64, 96, 96, 128, 128, 128), "avg"),
    ("Mixed_4c", _MODULE, (192, 96, 128, 96, 128, 128, 128), "avg"),
    ("Mixed_4d", _MODULE, (160, 128, 160, 128, 160, 160, 96), "avg"),
    ("Mixed_4e", _MODULE, (96, 128, 192, 160, 192, 192, 96), "avg"),
    ("Mixed_5a", _REDUCTION, (128, 192, 192, 256, 256), None),
    ("Mixed_5b", _MODULE, (352, 192, 320, 160, 224, 224, 128), "avg"),
    ("Mixed_5c", _MODULE, (352, 192, 320, 192, 224, 224, 128), "max"),
]


class _Random:
    """Random initial values: He-scaled weights (activations keep their size), random BN stats."""

    def __init__(self, seed):
        self.seed = seed

    def variable(self, name, shape, kind):
        self.seed += 1
        if kind == "weights":
            fan_in = int(np.prod(shape[:-1]))
            init = v1.random_normal_initializer(0.0, np.sqrt(2.0 / fan_in), self.seed)
        elif kind in ("moving_variance", "gamma"):
            init = v1.random_uniform_initializer(0.5, 1.5, self.seed)
        else:
            init = v1.random_normal_initializer(0.0, 0.1, self.seed)
        return v1.get_variable(name, shape, tf.float32, init)


def _batch_norm(x, init, scale):
    """slim.batch_norm in inference mode (is_training=False): the moving statistics."""
    channels = int(x.shape[-1])
    with v1.variable_scope("BatchNorm"):
        gamma = (
            init.variable("gamma", [channels], "gamma")
            if scale
            else tf.ones([channels])
        )
        beta = init.variable("beta", [channels], "beta")
        mean = init.variable("moving_mean", [channels], "moving_mean")
        variance = init.variable("moving_variance", [channels], "moving_variance")
    y, _, _ = v1.nn.fused_batch_norm(
        x, gamma, beta, mean, variance, epsilon=EPSILON, is_training=False
    )
    return y


def _conv(x, width, kernel, stride, scope, init, scale):
    with v1.variable_scope(scope):
        w = init.variable(
            "weights", [kernel, kernel, int(x.shape[-1]), width], "weights"
        )
        y = tf.nn.conv2d(x, w, stride, "SAME")
        return tf.nn.relu(_batch_norm(y, init, scale))


def _pool(x, op, stride):
    pool = tf.nn.avg_pool2d if op == "avg" else tf.nn.max_pool2d
    return pool(x, 3, stride, "SAME")


def _first_layer(x, kind, init, scale):
    """Conv2d_1a_7x7: slim.separable_conv2d (bias, no normaliser), or normalised."""
    with v1.variable_scope("Conv2d_1a_7x7"):
        depthwise = init.variable("depthwise_weights", [7, 7, 3, 8], "weights")
        pointwise = init.variable("pointwise_weights", [1, 1, 24, 64], "weights")
        y = tf.nn.separable_conv2d(x, depthwise, pointwise, [1, 2, 2, 1], "SAME")
        if kind == "separable_bn":
            y = _batch_norm(y, init, scale)
        else:
            y = y + init.variable("biases", [64], "biases")
        return tf.nn.relu(y)


def _mixed_5c(images, kind, init, scale):
    with v1.variable_scope("InceptionV2"):
        net = _first_layer(images, kind, init, scale)
        net = _pool(net, "max", 2)
        net = _conv(net, 64, 1, 1, "Conv2d_2b_1x1", init, scale)
        net = _conv(net, 192, 3, 1, "Conv2d_2c_3x3", init, scale)
        net = _pool(net, "max", 2)
        for name, layout, depths, pool in _BLOCKS:
            depths = iter(depths)
            with v1.variable_scope(name):
                branches = []
                for branch, ops in layout.items():
                    with v1.variable_scope(branch):
                        y = net
                        for scope, op, kernel, stride in ops:
                            if op == "conv":
                                y = _conv(
                                    y, next(depths), kernel, stride, scope, init, scale
                                )
                            else:
                                y = _pool(y, pool if op == "pool" else op, stride)
                        branches.append(y)
                net = tf.concat(branches, axis=3)
        with v1.variable_scope(
            "Logits/Conv2d_1c_1x1"
        ):  # the classifier, which loads ignore
            init.variable("weights", [1, 1, 1024, 1001], "weights")
            init.variable("biases", [1001], "biases")
    return net


def reference_checkpoint(images, prefixes, kind="separable", scale=False, seed=0):
    """Builds the reference graph, runs it on `images`, saves its variables.

    Args:
      images: float32 [b, H, W, 3].
      prefixes: {"V1" or "V2": checkpoint path} to write.
      kind: Conv2d_1a_7x7 as slim defines it ("separable"), or normalised ("separable_bn").
      scale: batch norm with gamma.
      seed: of the random values.

    Returns:
      (Mixed_5c output [b, ceil(H/32), ceil(W/32), 1024], {variable name: value}).
    """
    graph = tf.Graph()
    with graph.as_default():
        inputs = v1.placeholder(tf.float32, [None, *images.shape[1:]])
        output = _mixed_5c(inputs, kind, _Random(seed), scale)
        v1.train.get_or_create_global_step()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            variables = {v.op.name: v for v in v1.global_variables()}
            result, values = session.run((output, variables), {inputs: images})
            for version, prefix in prefixes.items():
                saver = v1.train.Saver(
                    write_version=getattr(v1.train.SaverDef, version)
                )
                saver.save(session, prefix, write_meta_graph=False)
    return result, values


def write_checkpoint(values, prefix):
    """Writes {name: numpy value} as a V2 name-based checkpoint, as slim's Saver would."""
    graph = tf.Graph()
    with graph.as_default():
        # Fed rather than embedded: 40 MB of constants would make every session call slow.
        fed = {
            name: v1.placeholder(value.dtype, value.shape)
            for name, value in values.items()
        }
        variables = {
            name: v1.Variable(tensor, name="v") for name, tensor in fed.items()
        }
        with v1.Session() as session:
            feed = {fed[name]: value for name, value in values.items()}
            session.run(v1.global_variables_initializer(), feed)
            v1.train.Saver(var_list=variables).save(
                session, prefix, write_meta_graph=False
            )
    return prefix
