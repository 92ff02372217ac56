"""The anchor of the backbone benchmark: the official NVlabs FAN detection backbone, from a checkout.

Nothing of the official code ships with fan_mm: the user points to a clone of https://github.com/NVlabs/FAN
(``--official-checkout``), and its ``detection/models/fan.py`` (the backbone of the paper's Mask R-CNN /
Cascade Mask R-CNN runs) is imported from there. That file was written for mmdet 2.x / mmcv 1.x and timm
0.5.4: it imports mmdet's ``BACKBONES`` registry, ``get_root_logger`` and mmcv's ``load_checkpoint``, which
only register the classes and load checkpoints, neither of which timing needs; they are replaced by
stand-ins while the file is imported. The timm it needs is whatever the process imports first; give a folder
holding timm 0.5.4 (``pip install --target DIR --no-deps timm==0.5.4``) as ``--official-timm`` to time it
with its own timm. fan_mm needs timm 1.x, so the official rows run in a process of their own
(:func:`fan_mm.benchmarks.backbone.run_backbone_benchmark`), each process timing the same reference model
(torchvision's, which does not depend on timm), and ratios across processes are taken through it.
"""
import importlib.util
import logging
import os.path as osp
import sys
import types
from typing import Dict

import torch.nn as nn

# spec name -> the official class (detection/models/fan.py); their configs turn activation checkpointing
# on (use_checkpoint=True): here it is off unless the spec has +cp, as for fan_mm's specs
OFFICIAL_CLASSES: Dict[str, str] = {
    'official_fan_t_hybrid': 'fan_tiny_8_p4_hybrid',
    'official_fan_s_hybrid': 'fan_small_12_p4_hybrid',
    'official_fan_b_hybrid': 'fan_base_12_p4_hybrid',
    'official_fan_l_hybrid': 'fan_large_12_p4_hybrid',
}
CHECKOUT_ENV = 'FAN_MM_OFFICIAL_FAN'  # how the checkout reaches the process that builds the models
_PACKAGE = 'nvlabs_fan_detection_models'


def check_checkout(checkout: str) -> str:
    """The checkout's ``detection/models`` folder, or a clear error."""
    models = osp.join(checkout, 'detection', 'models')
    if not osp.isfile(osp.join(models, 'fan.py')):
        raise FileNotFoundError(f'{checkout} is not a checkout of NVlabs/FAN: {models}/fan.py not found '
                                '(git clone https://github.com/NVlabs/FAN)')
    return models


class _Registry:
    def register_module(self, *args, **kwargs):
        return (lambda cls: cls) if not args or not isinstance(args[0], type) else args[0]


def _stand_ins() -> Dict[str, types.ModuleType]:
    """The mmdet 2.x / mmcv 1.x names the official file imports (registration, logging, checkpoint loading)."""
    mods = {name: types.ModuleType(name) for name in ('mmdet', 'mmdet.models', 'mmdet.models.builder',
                                                      'mmdet.utils', 'mmcv', 'mmcv.runner')}
    mods['mmdet.models.builder'].BACKBONES = _Registry()
    mods['mmdet.utils'].get_root_logger = lambda *a, **k: logging.getLogger('official_fan')

    def load_checkpoint(*args, **kwargs):
        raise RuntimeError('the benchmark builds the official backbone with random weights')
    mods['mmcv.runner'].load_checkpoint = load_checkpoint
    return mods


def _import_official(checkout: str) -> types.ModuleType:
    models = check_checkout(checkout)
    loaded = sys.modules.get(_PACKAGE + '.fan')
    if loaded is not None:
        if osp.realpath(osp.dirname(loaded.__file__)) != osp.realpath(models):
            raise ValueError(f'the official code of {osp.dirname(loaded.__file__)} is already imported in this '
                             f'process; {checkout} needs a process of its own')
        return loaded
    saved = {name: sys.modules.get(name) for name in _stand_ins()}
    sys.modules.update(_stand_ins())
    try:
        package = types.ModuleType(_PACKAGE)
        package.__path__ = [models]
        sys.modules[_PACKAGE] = package
        for name in ('convnext_utils', 'fan'):
            spec = importlib.util.spec_from_file_location(f'{_PACKAGE}.{name}', osp.join(models, f'{name}.py'))
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return sys.modules[_PACKAGE + '.fan']


def build_official(name: str, checkout: str) -> nn.Module:
    """The official detection backbone ``name`` (a key of ``OFFICIAL_CLASSES``), random weights, activation
    checkpointing off; its forward returns the four maps of the detection configs."""
    fan = _import_official(checkout)
    model = getattr(fan, OFFICIAL_CLASSES[name])(pretrained=None)
    model.use_checkpoint = False
    return model
