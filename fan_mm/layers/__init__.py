"""Model-independent building blocks (as ``timm.layers``): autocast helpers, memory-saving autograd
functions, channels_last-friendly convs, stochastic depth that compiles once for all rates and regional
``torch.compile``. The model files import from here; nothing here knows about a model family."""
from .autocast import autocast_dtype, cast_for_linears, float32_stream
from .compile import MIN_RECOMPILE_LIMIT, compile_trunk_blocks
from .conv import depthwise_conv
from .drop import DropPath
from .gelu_linear import GeluLinear, gelu_linear

__all__ = ['autocast_dtype', 'cast_for_linears', 'float32_stream', 'MIN_RECOMPILE_LIMIT', 'compile_trunk_blocks',
           'depthwise_conv', 'DropPath', 'GeluLinear', 'gelu_linear']
