"""fan_mm: FAN and LV-ViT backbones for mmdetection / mmsegmentation, and a
corruption-robustness benchmark (Cityscapes-C, COCO-C) for dense prediction.

Importing the package (configs do it through ``custom_imports=dict(imports=['fan_mm'])``)
registers the classification models in timm and, where mmdet / mmseg are installed, the
dense backbones and transforms in their registries. It also lets mmengine 0.10.7 resume
from its own checkpoints on torch >= 2.6 (see ``fan_mm.utils.checkpoint_compat``).
"""
from .version import __version__
from . import models  # noqa: F401,E402  (registers models)
from .robustness import transforms  # noqa: F401,E402  (registers CorruptImage, CorruptedImageName)
try:
    from . import engine  # noqa: F401,E402  (registers NonFiniteLossHook, EmptyPredictionsHook)
    from .utils import optim_constructor  # noqa: F401,E402  (registers NoDecayOptimWrapperConstructor)
except ImportError:  # mmengine not installed: only the timm models are usable
    pass
from .utils import install_mmengine_checkpoint_loader  # noqa: E402

install_mmengine_checkpoint_loader()

__all__ = ['__version__']
