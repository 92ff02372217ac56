"""fan_mm.engine.runner.setup_cpu_distributed: a distributed launch without GPUs gets gloo, a CPU DDP
wrapper and no SyncBatchNorm."""
import socket

import pytest

pytest.importorskip('mmengine')
torch = pytest.importorskip('torch')
import torch.distributed as dist  # noqa: E402
from mmengine.config import Config  # noqa: E402

from fan_mm.engine.runner import setup_cpu_distributed  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path only runs without CUDA')


@pytest.fixture
def one_process_env(monkeypatch):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    for key, value in dict(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK='0', WORLD_SIZE='1').items():
        monkeypatch.setenv(key, value)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.parametrize('wrapper, expected', [
    (None, dict(type='MMDistributedDataParallel', broadcast_buffers=False, find_unused_parameters=False,
                device_ids=None)),
    (dict(type='MMDistributedDataParallel', device_ids=[0], find_unused_parameters=True),
     dict(type='MMDistributedDataParallel', device_ids=None, find_unused_parameters=True)),
])
def test_gloo_group_cpu_wrapper_and_no_sync_bn(one_process_env, wrapper, expected):
    cfg = Config(dict(launcher='pytorch', sync_bn='torch', model_wrapper_cfg=wrapper))
    setup_cpu_distributed(cfg)
    assert dist.is_initialized() and dist.get_backend() == 'gloo'
    assert cfg.sync_bn is None
    assert dict(cfg.model_wrapper_cfg) == expected


def test_untouched_without_a_launcher_and_refused_for_nccl(one_process_env):
    cfg = Config(dict(launcher='none', sync_bn='torch'))
    setup_cpu_distributed(cfg)
    assert not dist.is_initialized() and cfg.sync_bn == 'torch'
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    with pytest.raises(RuntimeError, match='gloo'):
        setup_cpu_distributed(cfg)
    assert not dist.is_initialized()
