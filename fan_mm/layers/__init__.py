"""Model-independent building blocks (as ``timm.layers``): autocast helpers, memory-saving autograd
functions, channels_last-friendly convs, stochastic depth that compiles once for all rates and
``torch.compile`` of a backbone (its blocks, or its whole forward). The model files import from here; nothing here knows about a model family."""
from .autocast import autocast_dtype, cast_for_linears, float32_stream
from .compile import MIN_RECOMPILE_LIMIT, compile_trunk_blocks, compile_whole_forward
from .conv import depthwise_conv
from .drop import DropPath
from .gelu_linear import GeluLinear, gelu_linear

__all__ = ['autocast_dtype', 'cast_for_linears', 'float32_stream', 'MIN_RECOMPILE_LIMIT', 'compile_trunk_blocks',
           'compile_whole_forward', 'depthwise_conv', 'DropPath', 'GeluLinear', 'gelu_linear']
