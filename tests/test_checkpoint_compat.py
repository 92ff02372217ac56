"""mmengine 0.10.7 on torch >= 2.6: resume checkpoints load once fan_mm is imported."""
import subprocess
import sys

import pytest

MAKE_AND_LOAD = r'''
import sys
import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint
# what a resume checkpoint holds besides tensors: numpy scalars, mmengine objects
torch.save({'meta': {'seed': np.int64(3), 'iter': 6},
            'message_hub': {'log_scalars': {'train/loss': HistoryBuffer([1.0, 0.5], [1, 1])}},
            'state_dict': {'w': torch.ones(2)}}, sys.argv[1])
if sys.argv[2] == 'with_fan_mm':
    import fan_mm.engine  # noqa: F401  (installs the loader)
ckpt = _load_checkpoint(sys.argv[1], map_location='cpu')
assert int(ckpt['meta']['seed']) == 3
print('loaded', type(ckpt['message_hub']['log_scalars']['train/loss']).__name__)
'''


def _load(tmp_path, mode):
    return subprocess.run([sys.executable, '-c', MAKE_AND_LOAD, str(tmp_path / 'c.pth'), mode],
                          capture_output=True, text=True)


def test_plain_mmengine_cannot_load_a_resume_checkpoint(tmp_path):
    import torch
    if tuple(int(v) for v in torch.__version__.split('.')[:2]) < (2, 6):
        pytest.skip('torch < 2.6 loads full pickles by default')
    res = _load(tmp_path, 'plain')
    assert res.returncode != 0 and 'weights_only' in res.stderr


def test_importing_fan_mm_lets_mmengine_load_it(tmp_path):
    res = _load(tmp_path, 'with_fan_mm')
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'loaded HistoryBuffer' in res.stdout
