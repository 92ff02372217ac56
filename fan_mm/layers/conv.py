"""Convolutions whose parameters are laid out for channels_last training."""
from torch import nn


def depthwise_conv(dim: int, kernel_size: int) -> nn.Conv2d:
    """Depthwise ``Conv2d`` (same padding) whose (C, 1, k, k) weight has channels_last strides (k*k, 1, k, 1).

    The memory is the same as the default layout (the stride of a size-1 dim is free), but a conv on a
    channels_last map returns its weight gradient with those strides, and DDP warns ("Grad strides do not
    match bucket view strides") about every parameter whose gradient is laid out unlike the parameter.
    """
    conv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
    conv.weight.data = conv.weight.data.as_strided(conv.weight.shape, (kernel_size * kernel_size, 1, kernel_size, 1))
    return conv
