"""The one checkpoint route: every family loads an official-format file through ``load_pretrained_file``
(timm) and ``DenseBackbone.load_pretrained`` (mm), with one reader, one remap per family and one message."""
import pytest
import timm
import torch

import fan_mm.models  # noqa: F401
from fan_mm.models import checkpoint_utils, fan, fan_swin, lvvit, pretrained
from fan_mm.models.backbones import FANHybrid, FANSwin, FANViT, LVViT
from fan_mm.models.checkpoint_utils import CheckpointError, mismatch_message
from golden_official import official_file

SWIN_T = 'fan_swin_tiny_patch4_window7_224'
# (registered name, its family's filter, the dense backbone built for it)
FAMILIES = [
    ('fan_tiny_8_p4_hybrid', fan.checkpoint_filter_fn, lambda: FANHybrid(arch='tiny')),
    ('fan_tiny_12_p16_224', fan.checkpoint_filter_fn, lambda: FANViT(arch='tiny')),
    ('lvvit_t', lvvit.checkpoint_filter_fn, lambda: LVViT(arch='tiny')),
    (SWIN_T, fan_swin.checkpoint_filter_fn, lambda: FANSwin(arch='tiny')),
]


@pytest.mark.parametrize('name, filter_fn, dense', FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_family_loads_through_the_same_functions(name, filter_fn, dense, monkeypatch):
    path = official_file(name, wrap='state_dict_ema')
    reads = []
    real_read = checkpoint_utils.load_state_dict_file

    def read(p):
        reads.append(str(p))
        return real_read(p)
    checks = []
    real_check = checkpoint_utils.check_state_dict

    def check(*args, **kwargs):
        checks.append(args[0])
        return real_check(*args, **kwargs)
    for module in (checkpoint_utils, pretrained, fan_mm.models.backbones.base):
        if hasattr(module, 'load_state_dict_file'):
            monkeypatch.setattr(module, 'load_state_dict_file', read)
        if hasattr(module, 'check_state_dict'):
            monkeypatch.setattr(module, 'check_state_dict', check)
    with torch.device('meta'):
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
        backbone = dense()
        backbone.load_pretrained(str(path))
    assert reads == [str(path)] * 2
    assert checks[0] == name and checks[1].startswith(type(backbone).__name__)
    # checkpoint_filter_fn is a pure remap in every family: no check, a dict in the model's naming
    sd = filter_fn(real_read(path), model)
    assert set(sd) <= set(model.state_dict()) | {'head.weight', 'head.bias'}


def test_one_mismatch_message_for_timm_and_mm_routes(tmp_path):
    path = official_file('fan_small_12_p4_hybrid', wrap='state_dict')
    with torch.device('meta'):
        with pytest.raises(CheckpointError) as timm_err:
            timm.create_model('fan_tiny_8_p4_hybrid', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
        with pytest.raises(CheckpointError) as mm_err:
            FANHybrid(arch='tiny').load_pretrained(str(path))
    for err, model in ((timm_err, 'fan_tiny_8_p4_hybrid'), (mm_err, 'FANHybrid (fan_tiny_8_p4_hybrid)')):
        msg = str(err.value)
        assert msg.startswith(f'{path} does not fit {model}: ') and 'wrong shape' in msg
        assert msg.endswith('The file looks like a fan_small_12_p4_hybrid checkpoint (100% of keys fit).')


def test_mismatch_message_wording():
    msg = mismatch_message('m', 'f.pth', ['a'], [], [], guess=('x', 0.5))
    assert msg == ('f.pth does not fit m: 1 weights the model needs are not in the file (e.g. a). '
                   'It does not look like any known variant either (closest: x, 50% of keys fit).')
    assert mismatch_message('m', 'f.pth', [], ['b'], [], guess=('m', 1.0)).endswith('(e.g. b).')


def test_dense_backbones_prune_through_prune_intermediate_layers():
    with torch.device('meta'):
        lv = LVViT(arch='tiny', out_indices=(0, 1), side_layers=False)
        swin = FANSwin(arch='tiny', out_indices=(0, 1))
    assert len(lv.trunk.blocks) == 2 and isinstance(lv.trunk.norm, torch.nn.Identity)
    assert len(swin.trunk.layers) == 2 and swin.trunk.layers[1].downsample is None
    assert 'trunk.layers.1.downsample.reduction.weight' in swin.unused_prefixes()
    assert 'trunk.blocks.2.attn.qkv.weight' in lv.unused_prefixes()


def test_one_arch_vocabulary():
    with torch.device('meta'):
        for cls, sizes in ((FANHybrid, ('tiny', 'small', 'base', 'large')), (FANViT, ('tiny', 'small', 'base', 'large')),
                           (FANSwin, ('tiny', 'small', 'base', 'large')), (LVViT, ('tiny', 'small', 'medium', 'large'))):
            by_size = cls(arch=sizes[0])
            by_name = cls(arch=by_size.variant_name)
            assert by_name.variant_name == by_size.variant_name
            with pytest.raises(ValueError, match=rf"{cls.__name__}: arch='s' is not a size name"):
                cls(arch='s')
