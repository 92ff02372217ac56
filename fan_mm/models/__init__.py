"""fan_mm models: importing this registers the timm classification models (FAN-ViT, FAN-Hybrid, FAN-Swin,
LV-ViT) and, where mmdet / mmseg are installed, the dense backbones and necks in their ``MODELS``
registries."""
from . import fan  # noqa: F401  (registers the timm models)
from .fan import FAN  # noqa: F401
from . import lvvit  # noqa: F401  (registers the LV-ViT timm models)
from . import fan_swin  # noqa: F401  (registers the FAN-Swin timm models)
from .backbones import FANHybrid, FANViT  # noqa: F401  (registers into mmdet / mmseg MODELS)
from .backbones import FANSwin, LVViT  # noqa: F401  (registers into mmdet / mmseg MODELS)
from .necks import SimplePyramid  # noqa: F401  (registers into mmdet / mmseg MODELS)
from .builder import build_from_config  # noqa: F401
