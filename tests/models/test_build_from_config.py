"""fan_mm.models.build_from_config: config -> mm model (or one part) in the config's registry scope."""
from pathlib import Path

import pytest

import fan_mm.models  # noqa: F401
from fan_mm.models import build_from_config

ROOT = Path(__file__).resolve().parents[2]
TOY = ROOT / 'configs' / 'toy'


def test_backbone_part_without_pretrained_files():
    pytest.importorskip('mmdet.models')
    from mmengine.registry import DefaultScope
    from fan_mm.models.backbones import FANHybrid
    backbone = build_from_config(str(TOY / 'maskrcnn_fan_t_hybrid_toy_coco.py'), part='backbone',
                                 pretrained=False)
    assert isinstance(backbone, FANHybrid) and backbone.variant_name == 'fan_tiny_8_p4_hybrid'
    assert DefaultScope.get_current_instance().scope_name == 'mmdet'


def test_whole_model_with_options_and_errors(tmp_path):
    pytest.importorskip('mmseg.models')
    from mmengine.registry import DefaultScope
    model = build_from_config(str(TOY / 'segformer_fan_t_hybrid_toy_cityscapes.py'),
                              cfg_options={'model.decode_head.num_classes': 5}, pretrained=False)
    assert model.decode_head.num_classes == 5
    assert DefaultScope.get_current_instance().scope_name == 'mmseg'
    with pytest.raises(FileNotFoundError, match='nope.py'):
        build_from_config(str(tmp_path / 'nope.py'))
    bad = tmp_path / 'bad.py'
    bad.write_text("model = dict(type='X')\n")
    with pytest.raises(ValueError, match='default_scope=None'):
        build_from_config(str(bad))


def test_simple_pyramid_is_a_registered_neck():
    pytest.importorskip('mmdet.models')
    from mmdet.registry import MODELS
    from fan_mm.models.necks import SimplePyramid
    assert MODELS.module_dict['SimplePyramid'] is SimplePyramid
