"""The default GPU path on a CUDA device: blocks compiled with CUDA graphs (what the model bases set).

Skipped without a GPU (CI runs on CPUs); run on a GPU machine with
``python -m pytest tests/models/test_fast_paths_cuda.py``. The CPU tests in test_fast_paths.py cover the
same logic with torch.compile's eager backend; these check what only a GPU shows: CUDA-graph memory reuse,
inductor's kernels against the eager model, copies and moves of a compiled model.
"""
import copy

import pytest
import torch

from fan_mm.layers.compile import CompiledCall
from fan_mm.models.backbones import FANHybrid

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')

SMALL_HYBRID = dict(embed_dim=64, depth=2, num_heads=2, hybrid_depths=(1, 1), hybrid_dims=(32, 48))
DEFAULT = dict(mode='reduce-overhead', dynamic=True)  # configs/_base_/models, detection


def _pair(compile_blocks=DEFAULT, **kwargs):
    torch.manual_seed(0)
    eager = FANHybrid(arch=SMALL_HYBRID, **kwargs).cuda()
    compiled = FANHybrid(arch=SMALL_HYBRID, compile_blocks=compile_blocks, **kwargs).cuda()
    compiled.load_state_dict(eager.state_dict())
    return eager, compiled


def _close(a, b):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-3, atol=1e-3)


def _train_and_compare_gradients(eager, compiled, x):
    for _ in range(3):  # CUDA graphs are recorded at the second or third call
        for model in (eager, compiled):
            model.zero_grad()
            sum(f.float().square().mean() for f in model(x)).backward()
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=2e-3, atol=2e-4, msg=name)


def _infer_and_keep_the_maps(eager, compiled, sizes):
    # every returned map must stay valid after the next forward (CUDA-graph trees reuse output memory)
    eager.eval(), compiled.eval()
    with torch.no_grad():
        kept = []
        for size in sizes:
            x = torch.randn(2, 3, size, size, device='cuda')
            ref, out = eager(x), compiled(x)
            _close(ref, out)
            kept.append((ref, out))
        for ref, out in kept:  # still the values they had
            _close(ref, out)


def test_inference_features_survive_later_calls_and_sizes():
    eager, compiled = _pair()
    _infer_and_keep_the_maps(eager, compiled, (64, 96, 64, 128))
    assert compiled._blocks_compiled
    assert all(isinstance(getattr(m, '_compiled_call_impl', None), CompiledCall)
               for m in compiled.trunk.blocks)


def test_training_step_gradients_match_eager():
    eager, compiled = _pair()
    _train_and_compare_gradients(eager, compiled, torch.randn(2, 3, 96, 96, device='cuda'))


def test_deepcopy_after_compiled_forward_runs_its_own_weights():
    # mmengine's EMA model and any copy of a compiled model: own weights, compiled again
    _, compiled = _pair()
    compiled.eval()
    x = torch.randn(1, 3, 64, 64, device='cuda')
    with torch.no_grad():
        ref = [f.clone() for f in compiled(x)]
        twin = copy.deepcopy(compiled)
        for p in twin.parameters():
            p.mul_(0.5)
        out = twin(x)
        again = compiled(x)
    assert twin._blocks_compiled
    assert not all(torch.allclose(a, b) for a, b in zip(ref, out))
    _close(ref, again)


def test_moved_to_cpu_runs_eagerly_without_compiling():
    from torch._dynamo.utils import counters
    eager, compiled = _pair()
    eager.eval(), compiled.eval()
    with torch.no_grad():
        compiled(torch.randn(1, 3, 64, 64, device='cuda'))
        before = dict(counters['stats'])
        eager.cpu(), compiled.cpu()
        x = torch.randn(1, 3, 64, 64)
        _close(eager(x), compiled(x))
    assert dict(counters['stats']) == before  # no new dynamo frame was compiled


def test_with_cp_compiles_without_cuda_graphs_and_trains():
    eager, compiled = _pair(with_cp=True)
    x = torch.randn(2, 3, 64, 64, device='cuda')
    for model in (eager, compiled):
        sum(f.float().square().mean() for f in model(x)).backward()
    assert not any(m._compiled_call_impl.clones_without_grad for m in compiled.trunk.blocks)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=2e-3, atol=2e-4, msg=name)


def _count_recordings(monkeypatch):
    """A list that grows by one for every CUDA graph recorded from now on."""
    from torch._inductor import cudagraph_trees
    recorded = []
    record = cudagraph_trees.CUDAGraphTreeManager.record_function

    def counting(self, *args, **kwargs):
        recorded.append(1)
        return record(self, *args, **kwargs)
    monkeypatch.setattr(cudagraph_trees.CUDAGraphTreeManager, 'record_function', counting)
    return recorded


def _train_then_validate(model, x, mark_steps=False):
    model.train()
    for _ in range(3):
        if mark_steps:
            torch.compiler.cudagraph_mark_step_begin()
        model.zero_grad()
        sum(f.float().square().mean() for f in model(x)).backward()
    model.eval()
    with torch.no_grad():
        return [model(x) for _ in range(3)]


@pytest.mark.parametrize('mark_steps', [False, True])
def test_validation_between_training_rounds_replays_without_copies(mark_steps, monkeypatch):
    # mmengine's loop: training iterations, then validation, again and again. Once every graph is
    # recorded, later rounds only replay, whether or not the program marks its training steps (a program
    # that once calls cudagraph_mark_step_begin switches trees to marked steps for good; unmarked
    # inference then recorded every block again at every call), and inference makes no per-block copies.
    from torch._inductor import cudagraph_trees
    from fan_mm.layers import compile as compile_module
    monkeypatch.setattr(cudagraph_trees.MarkStepBox, 'mark_step_counter', 0)  # restored after the test
    eager, compiled = _pair()
    x = torch.randn(2, 3, 96, 96, device='cuda')
    for _ in range(2):
        _train_then_validate(compiled, x, mark_steps)
    recorded = _count_recordings(monkeypatch)
    # the blocks' per-output clones (CompiledCall); the backbone clones the maps it returns once,
    # through its own import of clone_tensors, which this does not count
    block_clones = []
    clone = compile_module.clone_tensors
    monkeypatch.setattr(compile_module, 'clone_tensors', lambda out: block_clones.append(1) or clone(out))
    outs = _train_then_validate(compiled, x, mark_steps)
    assert not recorded
    assert not block_clones
    if not mark_steps:
        assert cudagraph_trees.MarkStepBox.mark_step_counter == 0  # torch's own generations again
    eager.load_state_dict(compiled.state_dict())
    eager.eval()
    with torch.no_grad():
        ref = eager(x)
    for out in outs:  # every forward's maps intact after the later ones
        _close(ref, out)


def test_no_grad_forward_inside_a_training_step_keeps_the_backward_right():
    # a teacher's (or an EMA model's) gradient-free forward between a training forward and its backward
    # must not end the generation whose outputs the backward still needs
    eager, compiled = _pair()
    x = torch.randn(2, 3, 96, 96, device='cuda')
    for _ in range(3):
        sides = []
        for model in (eager, compiled):
            model.zero_grad()
            loss = sum(f.float().square().mean() for f in model(x))
            with torch.no_grad():
                sides.append(model(x))
            loss.backward()
        _close(*sides)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=2e-3, atol=2e-4, msg=name)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_float32_streams_leave_the_forward_values_as_they_were(dtype):
    # fan_mm.layers.float32_stream hands each stage's first block a float32 copy of its autocast-dtype input;
    # on a GPU the blocks compute the same numbers from it (CUDA autocast runs LayerNorm in float32 for any
    # input), so the compiled graphs got fewer without the values changing
    from fan_mm.models import fan as fan_module
    torch.manual_seed(0)
    convnext = fan_module.ConvNeXtBlock(32).cuda().train()
    fan_block = fan_module.FANBlock(64, num_heads=2).cuda().train()
    with torch.no_grad():
        convnext.gamma.fill_(0.5), fan_block.gamma1.fill_(0.7), fan_block.gamma2.fill_(0.3)
    maps = torch.randn(2, 32, 12, 10, device='cuda').to(dtype).contiguous(memory_format=torch.channels_last)
    tokens = torch.randn(2, 8 * 6, 64, device='cuda').to(dtype)
    with torch.autocast('cuda', dtype=dtype):
        assert torch.equal(convnext(maps), convnext(maps.float()))
        assert torch.equal(fan_block(tokens, 8, 6), fan_block(tokens.float(), 8, 6))


def test_default_path_compiles_one_graph_per_block_kind_under_autocast():
    # the detection default (CUDA graphs, dynamic shapes) under fp16 autocast: two ConvNeXt widths, the FAN
    # block and class attention, each once per grad mode
    from torch._dynamo.utils import counters
    _, compiled = _pair()
    torch._dynamo.reset()
    counters.clear()
    x = torch.randn(2, 3, 96, 96, device='cuda')
    with torch.autocast('cuda', dtype=torch.float16):
        sum(f.float().square().mean() for f in compiled(x)).backward()
        assert counters['stats']['unique_graphs'] == 4
        compiled.eval()
        with torch.no_grad():
            compiled(x)
    assert counters['stats']['unique_graphs'] == 8
    assert counters['inductor']['cudagraph_skips'] == 0  # every one of them replays as a CUDA graph


def test_whole_backbone_graph_trains_validates_and_keeps_its_maps():
    # compile_blocks=dict(scope='backbone'): one CUDA graph for the forward and one for the backward, with the
    # eager gradients; validation between training rounds (a no-grad generation) returns maps that later calls
    # leave intact, and training afterwards still gets the eager gradients
    eager, whole = _pair(compile_blocks=dict(mode='reduce-overhead', scope='backbone'))
    x = torch.randn(2, 3, 96, 96, device='cuda')
    _train_and_compare_gradients(eager, whole, x)
    assert isinstance(whole._whole_forward, CompiledCall) and whole._blocks_graphed
    assert not any(isinstance(getattr(m, '_compiled_call_impl', None), CompiledCall) for m in whole.modules())
    _infer_and_keep_the_maps(eager, whole, (64, 96, 64))
    eager.train(), whole.train()
    _train_and_compare_gradients(eager, whole, x)
