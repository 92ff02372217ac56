"""The package root and the corruption engine import no torch and no OpenMMLab package.

Synthesis workers import ``fan_mm.corruptions`` once per process, and a user who only corrupts images
should not need torch at all; configs register the models and hooks through ``custom_imports`` of the
modules that hold them. Each check runs in a fresh interpreter, where nothing was imported before.
"""
import json
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
HEAVY = ('torch', 'torchvision', 'timm', 'mmengine', 'mmcv', 'mmdet', 'mmseg')


def _loaded_after(code: str) -> list:
    probe = code + f'\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))'
    res = subprocess.run([sys.executable, '-c', probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('code', [
    'import fan_mm',
    'import fan_mm.corruptions',
    # a whole corruption, seeded, as a synthesis worker runs it
    'import numpy as np\nfrom fan_mm.corruptions import corrupt\n'
    'corrupt(np.zeros((64, 64, 3), np.uint8), "gaussian_noise", 3, seed=0)',
    'import fan_mm.utils.image_io, fan_mm.utils.files, fan_mm.utils.environment',
])
def test_import_loads_no_torch_and_no_openmmlab(code):
    assert _loaded_after(code) == []


def test_configs_register_what_they_use_through_custom_imports():
    pytest.importorskip('mmdet.models')
    code = ('from mmengine.config import Config\n'
            'cfg = Config.fromfile("configs/toy/maskrcnn_fan_t_hybrid_toy_coco.py")\n'
            'from mmdet.registry import MODELS, HOOKS\n'
            'from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS\n'
            'assert "FANHybrid" in MODELS.module_dict, sorted(MODELS.module_dict)[:5]\n'
            'assert "NonFiniteLossHook" in HOOKS.module_dict\n'
            'assert "NoDecayOptimWrapperConstructor" in OPTIM_WRAPPER_CONSTRUCTORS.module_dict\n')
    assert 'torch' in _loaded_after(code)  # the config's custom_imports ran
