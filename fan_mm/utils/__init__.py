from .checkpoint_compat import install_mmengine_checkpoint_loader

try:  # registers NoDecayOptimWrapperConstructor in mmengine (used by the configs)
    from .optim_constructor import NoDecayOptimWrapperConstructor  # noqa: F401
except ImportError:  # mmengine not installed: only the timm models are usable
    pass

__all__ = ['install_mmengine_checkpoint_loader']
