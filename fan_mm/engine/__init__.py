"""Runner hooks that make failed runs fail loudly (registered in mmdet's and mmseg's ``HOOKS``)."""
from .hooks import EmptyPredictionsHook, NonFiniteLossError, NonFiniteLossHook, ensure_default_hooks

__all__ = ['EmptyPredictionsHook', 'NonFiniteLossError', 'NonFiniteLossHook', 'ensure_default_hooks']
