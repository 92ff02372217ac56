"""fan_mm's mmengine glue: importing it (configs do, through ``custom_imports``) registers in mmdet's / mmseg's
registries the runner hooks that make failed runs fail loudly, the optimizer constructor of the FAN recipes
with its resume hook, and lets mmengine 0.10.7 resume from its own checkpoints on torch >= 2.6
(``checkpoint_compat``)."""
from .checkpoint_compat import install_mmengine_checkpoint_loader
from .hooks import EmptyPredictionsHook, NonFiniteLossError, NonFiniteLossHook, ensure_default_hooks
from .optim_constructor import MergedGroupsResumeHook, NoDecayOptimWrapperConstructor

install_mmengine_checkpoint_loader()

__all__ = ['EmptyPredictionsHook', 'MergedGroupsResumeHook', 'NonFiniteLossError', 'NonFiniteLossHook',
           'NoDecayOptimWrapperConstructor', 'ensure_default_hooks', 'install_mmengine_checkpoint_loader']
