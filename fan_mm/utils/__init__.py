from .checkpoint_compat import install_mmengine_checkpoint_loader

__all__ = ['install_mmengine_checkpoint_loader']
