"""tools/convert_checkpoint.py: official ImageNet file -> mm ``load_from`` file."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import fan_mm.models  # noqa: F401
from fan_mm.models.backbones import FANHybrid, FANViT
from fan_mm.models.checkpoint_utils import CheckpointError
from fan_mm.models.convert import convert_checkpoint
from fan_test_utils import GOLDEN, official_state_dict

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def official(tmp_path_factory):
    root = tmp_path_factory.mktemp('convert')
    paths = {}
    for name in ('fan_tiny_8_p4_hybrid', 'fan_tiny_12_p16_224', 'lvvit_t'):
        sd = official_state_dict(GOLDEN / f'{name}.keys.txt')
        paths[name] = root / f'{name}.pth.tar'
        torch.save({'state_dict_ema': {'module.' + k: v for k, v in sd.items()}, 'epoch': 300}, paths[name])
    return paths


class Detector(nn.Module):
    """Stands in for an mm detector: a backbone plus layers the checkpoint does not have."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.neck = nn.Conv2d(3, 3, 1)


@pytest.mark.parametrize('codebase', ['mmdet', 'mmseg'])
def test_hybrid_conversion_loads_with_mmengine(official, tmp_path, codebase):
    from mmengine.runner import load_checkpoint
    dst = tmp_path / f'{codebase}.pth'
    meta = convert_checkpoint(str(official['fan_tiny_8_p4_hybrid']), str(dst), codebase=codebase)
    assert meta['model'] == 'fan_tiny_8_p4_hybrid' and meta['backbone'] == 'FANHybrid'
    assert 'trunk.head (2 tensors)' in meta['note']
    raw = torch.load(dst, weights_only=True)  # plain tensors + primitives: safe-loadable
    assert set(raw) == {'state_dict', 'meta'}
    assert all(k.startswith('backbone.trunk.') for k in raw['state_dict'])
    model = Detector(FANHybrid(arch='tiny', feat_downsample=codebase == 'mmdet'))
    load_checkpoint(model, str(dst), strict=False)
    ref = official_state_dict(GOLDEN / 'fan_tiny_8_p4_hybrid.keys.txt')
    own = model.backbone.state_dict()
    # all but the classifier, the final norm and the class token's path (FAN.prune_class_token)
    class_token_path = [k for k in ref if k == 'cls_token' or k.startswith('cls_attn_blocks.') and
                        k.split('.')[2] in ('attn', 'mlp', 'gamma2')]
    assert len(class_token_path) == 1 + 13 * 2
    assert 'trunk.cls_token (1 tensor)' in meta['note']
    for k, v in ref.items():
        if not k.startswith(('head.', 'norm.')) and k not in class_token_path:
            assert torch.equal(own['trunk.' + k], v), k
    assert len(raw['state_dict']) == len(ref) - 4 - len(class_token_path)


def test_vit_conversion_identified_and_pyramid_left_new(official, tmp_path):
    dst = tmp_path / 'vit.pth'
    meta = convert_checkpoint(str(official['fan_tiny_12_p16_224']), str(dst), codebase='mmseg')
    assert meta['model'] == 'fan_tiny_12_p16_224' and meta['backbone'] == 'FANViT'
    assert 'pyramid' in meta['note'] and 'trained from scratch' in meta['note']
    model = FANViT(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()  # the converted file also works as init_cfg (mm-style keys)
    converted = torch.load(dst)['state_dict']
    assert torch.equal(model.trunk.cls_attn_blocks[1].norm2.weight,
                       converted['backbone.trunk.cls_attn_blocks.1.norm2.weight'])
    assert 'backbone.trunk.cls_token' not in converted  # the maps never read it (FAN.prune_class_token)


def test_conversion_errors(official, tmp_path):
    with pytest.raises(CheckpointError, match='looks like a fan_tiny_8_p4_hybrid checkpoint'):
        convert_checkpoint(str(official['fan_tiny_8_p4_hybrid']), str(tmp_path / 'x.pth'),
                           model='fan_small_12_p4_hybrid')
    with pytest.raises(CheckpointError, match='does not look like any registered model'):
        convert_checkpoint(str(official['lvvit_t']), str(tmp_path / 'x.pth'), family='fan')
    with pytest.raises(ValueError, match="codebase='mmpose'"):
        convert_checkpoint(str(official['lvvit_t']), str(tmp_path / 'x.pth'), codebase='mmpose')
    assert not (tmp_path / 'x.pth').exists()


def test_tool_command_line(official, tmp_path):
    dst = tmp_path / 'out' / 'fan_t_hybrid_mmdet.pth'
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    run = subprocess.run([sys.executable, str(ROOT / 'tools' / 'convert_checkpoint.py'),
                          str(official['fan_tiny_8_p4_hybrid']), str(dst), '--model', 'fan_tiny_8_p4_hybrid'],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert 'fan_tiny_8_p4_hybrid as FANHybrid for mmdet' in run.stdout
    assert 'backbone.learnable_downsample.weight' not in torch.load(dst)['state_dict']


def test_mmdet_mask_rcnn_load_from(official, tmp_path):
    """A real mmdet Mask R-CNN with FANHybrid loads the converted file (what load_from does)."""
    pytest.importorskip('mmdet.models')
    import mmdet
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    dst = tmp_path / 'det.pth'
    convert_checkpoint(str(official['fan_tiny_8_p4_hybrid']), str(dst))
    cfg = Config.fromfile(os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs', '_base_', 'models',
                                       'mask-rcnn_r50_fpn.py'))
    cfg.model.backbone = dict(type='FANHybrid', arch='tiny')
    cfg.model.neck.in_channels = [128, 256, 192, 768]
    with DefaultScope.overwrite_default_scope('mmdet'):  # restored afterwards: no leak into other tests
        model = MODELS.build(cfg.model)
    load_checkpoint(model, str(dst), strict=False)
    ref = official_state_dict(GOLDEN / 'fan_tiny_8_p4_hybrid.keys.txt')
    assert torch.equal(model.backbone.trunk.blocks[7].mlp.temperature, ref['blocks.7.mlp.temperature'])
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 64, 96))
    assert [f.shape[-1] for f in feats] == [24, 12, 6, 3, 2]
