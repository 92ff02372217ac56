"""Helpers shared by fan_mm. Importing this package loads nothing heavy (no torch, no
OpenMMLab), so that light modules such as :mod:`fan_mm.utils.image_io` can be used by the
corruption engine; ``fan_mm/__init__.py`` registers the optimizer constructor."""

__all__ = ['install_mmengine_checkpoint_loader']


def install_mmengine_checkpoint_loader():
    """See :func:`fan_mm.utils.checkpoint_compat.install_mmengine_checkpoint_loader` (needs torch)."""
    from .checkpoint_compat import install_mmengine_checkpoint_loader as install
    return install()
