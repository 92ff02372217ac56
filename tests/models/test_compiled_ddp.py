"""Compiled blocks under DistributedDataParallel: two CPU processes (gloo) train a FAN-Hybrid backbone whose
blocks are compiled as the detection configs compile them (``dynamic=True``; torch.compile's ``aot_eager``
backend, since inductor on a CPU takes minutes), on two input sizes, and end with the parameters of a
single-process eager run that averages the two halves' gradients.

The same with the whole backbone compiled as one graph (``compile_blocks``' ``scope='backbone'``), whose
gradients reach DDP's hooks only when its whole backward is done. This is what DDP with the compiled default
path needs to hold: each block's compiled backward hands its
gradients to DDP's hooks (``compile_trunk_blocks`` turns dynamo's DDP graph splitting off), both ranks
reduce the same buckets in the same order, and a new input size recompiles the same way on every rank.
CUDA graphs and NCCL need GPUs; tests/models/test_fast_paths_cuda.py covers the former on one.
"""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fan_mm.models.backbones import FANHybrid

SMALL_HYBRID = dict(embed_dim=64, depth=2, num_heads=2, hybrid_depths=(1, 1), hybrid_dims=(32, 48))
COMPILED = dict(on_cpu=True, backend='aot_eager', dynamic=True)
WHOLE = dict(COMPILED, scope='backbone')  # the whole backbone as one graph: its gradients reach DDP at its end
SIZES = (64, 96, 64)  # a second size (recompiles with symbolic sizes), then the first again
LR = 0.1

pytestmark = pytest.mark.skipif(not dist.is_gloo_available(), reason='needs torch.distributed with gloo')


def _model(compile_blocks):
    torch.manual_seed(0)
    model = FANHybrid(arch=SMALL_HYBRID, compile_blocks=compile_blocks)
    with torch.no_grad():  # LayerScale and norms away from their inits: every term of a block matters
        for name, p in model.named_parameters():
            if p.dim() <= 1:
                p.add_(0.3 * torch.randn_like(p))
    return model.train()


def _batch(step, size):
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(4, 3, size, size, generator=g)


def _loss(outs):
    # weighted so that every map and every channel gets a different gradient
    return sum((o.float() * torch.linspace(-1, 1, o.shape[1]).reshape(1, -1, 1, 1)).square().mean() * (i + 1)
               for i, o in enumerate(outs))


def _rank(rank, world, port, out_path, compile_blocks):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        model = torch.nn.parallel.DistributedDataParallel(_model(compile_blocks))
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        for step, size in enumerate(SIZES):
            x = _batch(step, size).chunk(world)[rank]  # this rank's half of the batch
            opt.zero_grad(set_to_none=True)
            _loss(model(x)).backward()
            opt.step()
        from torch._dynamo.utils import counters
        graphs = counters['stats']['unique_graphs']  # what dynamo compiled in this process
        if rank == 0:
            torch.save(dict(params={k: v.detach().clone() for k, v in model.module.named_parameters()},
                            graphs=graphs), out_path)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


@pytest.mark.slow  # two processes compiling small graphs (~1 min on 2 busy cores)
@pytest.mark.parametrize('compile_blocks', [COMPILED, WHOLE], ids=['blocks', 'whole_backbone'])
def test_ddp_with_compiled_blocks_matches_one_process_eager(tmp_path, compile_blocks):
    out_path = str(tmp_path / 'rank0.pt')
    mp.start_processes(_rank, args=(2, _free_port(), out_path, compile_blocks), nprocs=2, join=True,
                       start_method='spawn')
    result = torch.load(out_path)
    if compile_blocks is WHOLE:
        assert result['graphs'] == 1  # one graph of the whole forward, symbolic sizes: all sizes
    else:
        assert result['graphs'] >= 2 * len(set(SIZES))  # blocks of two kinds, per size at least

    # one process, eager: the mean of the two halves' gradients (each half normalised on its own, as BatchNorm
    # does on each rank), the same SGD steps
    model = _model(False)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    for step, size in enumerate(SIZES):
        opt.zero_grad(set_to_none=True)
        for half in _batch(step, size).chunk(2):
            (_loss(model(half)) / 2).backward()
        opt.step()
    start = _model(False).state_dict()
    for name, p in model.named_parameters():
        # channel processing's q bias shifts each channel by the same amount for every token, and the softmax
        # over tokens that follows cancels it: its gradient is zero up to rounding (in the official model too)
        if not name.endswith('.mlp.q.bias'):
            assert not torch.equal(p.detach(), start[name]), f'{name} was not trained'
        torch.testing.assert_close(result['params'][name], p.detach(), rtol=1e-4, atol=1e-5,
                                   msg=lambda m: f'{name}: {m}')
    assert len(result['params']) == len(dict(model.named_parameters()))
