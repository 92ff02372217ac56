"""fan_mm.engine.runner.check_checkpoint (tools/test.py, tools/test_robustness.py): a file that fits the model
passes, and so does one that also holds weights the backbone declares it does not use (fan_mm checkpoints
written before the class token's path was pruned hold it); anything else the model lacks is refused by name."""
import pytest
import torch
import torch.nn as nn

from fan_mm.engine.runner import CheckpointMismatchError, check_checkpoint
from fan_mm.models.backbones import FANHybrid

SMALL_HYBRID = dict(embed_dim=64, depth=2, num_heads=2, hybrid_depths=(1, 1), hybrid_dims=(32, 48))


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = FANHybrid(arch=SMALL_HYBRID)
        self.neck = nn.Conv2d(3, 3, 1)


def _save(tmp_path, state_dict):
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': state_dict, 'meta': {}}, path)
    return str(path)


def test_weights_the_backbone_does_not_use_are_no_misfit(tmp_path):
    model = Detector()
    state = dict(model.state_dict())
    assert check_checkpoint(model, _save(tmp_path, state))['fits']
    # the class token's path, as an older fan_mm checkpoint of this detector holds it
    pruned = [k for k in model.backbone._pruned_keys if k.startswith('trunk.cls_')]
    assert 'trunk.cls_token' in pruned and any('.attn.' in k for k in pruned)
    old = dict(state, **{'backbone.' + k: torch.zeros(1) for k in pruned})
    report = check_checkpoint(model, _save(tmp_path, old))
    assert report['fits'] and report['unused_by_backbone'] == len(pruned) and report['unexpected'] == 0
    # a weight the model has no place for is still refused, by name, wherever it sits
    for extra in ('neck.extra.weight', 'backbone.trunk.blocks.0.extra'):
        with pytest.raises(CheckpointMismatchError, match=extra.replace('.', r'\.')):
            check_checkpoint(model, _save(tmp_path, dict(old, **{extra: torch.zeros(1)})))
