"""One config per head type trains through ``tools/train.py`` on the generated toy datasets.

Mask R-CNN and SegFormer are trained (and resumed, and tested) by ``tests/tools/test_train_test_tools.py``;
this file covers the other heads of the zoo: Cascade Mask R-CNN, UPerNet and SETR. Each run is a
subprocess started the way a user starts it, in a scratch folder holding ``data/toy_coco`` /
``data/toy_cityscapes`` so the configs' relative data roots resolve: two iterations with a
checkpoint after each, then validation.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

pytest.importorskip('mmdet.models')
pytest.importorskip('mmseg.models')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY = osp.join(ROOT, 'configs', 'toy')
RUNS = {
    'cascade': ('cascade_maskrcnn_fan_t_hybrid_toy_coco.py', 'roi_head.bbox_head.2.shared_convs.0.conv.weight',
                'coco/bbox_mAP'),
    'upernet': ('upernet_fan_t_hybrid_toy_cityscapes.py', 'decode_head.fpn_bottleneck.conv.weight', 'mIoU'),
    'setr': ('setr_pup_fan_t_vit_toy_cityscapes.py', 'decode_head.up_convs.3.0.conv.weight', 'mIoU'),
}


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    from fan_mm.datasets import make_toy_dataset
    root = tmp_path_factory.mktemp('toy_heads')
    make_toy_dataset('coco', str(root / 'data' / 'toy_coco'), num_train=4, num_val=2)
    make_toy_dataset('cityscapes', str(root / 'data' / 'toy_cityscapes'), num_train=4, num_val=2)
    return root


@pytest.mark.parametrize('head', sorted(RUNS))
def test_head_trains_and_validates_through_tools_train(head, toy_root):
    config, head_param, metric = RUNS[head]
    work = toy_root / f'work_{head}'
    # one OpenMP thread: several threads on 2 shared cores are much slower
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    res = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'train.py'), osp.join(TOY, config), '--work-dir', str(work),
         '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
         'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=3',
         'default_hooks.logger.interval=1', 'randomness.seed=0'],
        cwd=toy_root, env=env, capture_output=True, text=True, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]

    losses = [float(v) for v in re.findall(r'Iter\(train\)\s*\[\s*\d+/2\].*?\sloss: ([-\d.naninf]+)', out)]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses))), out[-3000:]
    assert re.search(rf'Iter\(val\).*{re.escape(metric)}', out), out[-3000:]

    first = torch.load(work / 'iter_1.pth', map_location='cpu', weights_only=False)['state_dict']
    second = torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=False)['state_dict']
    # the optimiser updated the head and the backbone (first FAN / ConvNeXt weights) in step 2
    assert not torch.equal(first[head_param], second[head_param])
    stem = next(k for k in first if k.startswith('backbone.trunk.patch_embed.') and k.endswith('weight'))
    assert not torch.equal(first[stem], second[stem])
