"""The benchmark tools run end to end on CPU at a tiny size and write complete JSON results."""
import importlib.util
import json
from pathlib import Path

import pytest

from tool_loading import load_tool

ROOT = Path(__file__).resolve().parents[2]


def test_backbone_benchmark_cpu(tmp_path, capsys):
    out = tmp_path / 'b.json'
    load_tool('analysis/benchmark_backbone').main([
        '--device', 'cpu', '--size', '32', '--batch', '1', '--warmup', '0', '--repeats', '1',
        '--precision', 'fp32', '--models', 'fan_t_hybrid', 'convnext_t+cl', '--reference', 'convnext_t+cl',
        '--json', str(out)])
    res = json.loads(out.read_text())
    assert res['kind'] == 'backbone' and res['size'] == 32 and res['precision'] == 'fp32'
    assert res['reference'] == 'convnext_t+cl'
    assert [r['spec'] for r in res['rows']] == ['fan_t_hybrid', 'convnext_t+cl']
    for r in res['rows']:
        assert r['train_ms'] > 0 and r['infer_ms'] > 0 and r['params_m'] > 1
        assert r['train_peak_gib'] == 0.  # no CUDA memory on CPU
    assert res['rows'][1]['train_ratio'] == pytest.approx(1.0)
    assert res['rows'][0]['infer_ratio'] == pytest.approx(res['rows'][0]['infer_ms'] / res['rows'][1]['infer_ms'])
    table = capsys.readouterr().out
    assert '| fan_t_hybrid |' in table and 'ref = convnext_t+cl' in table


# A stand-in for a user's clone of NVlabs/FAN (which cannot ship here): detection/models/fan.py with the
# mmdet 2.x / mmcv 1.x imports of the real file, and a backbone class of the real name.
FAKE_OFFICIAL_FAN = """
import torch
import torch.nn as nn
from mmdet.models.builder import BACKBONES
from mmdet.utils import get_root_logger
from mmcv.runner import load_checkpoint
from .convnext_utils import STEM


@BACKBONES.register_module()
class fan_small_12_p4_hybrid(nn.Module):
    def __init__(self, pretrained=None):
        super().__init__()
        self.stem = STEM()
        self.use_checkpoint = True
        get_root_logger().info('built')

    def forward(self, x):
        x = self.stem(x)
        return [x, x[:, :, ::2, ::2]]
"""


def _fake_checkout(root):
    models = root / 'detection' / 'models'
    models.mkdir(parents=True)
    (models / 'fan.py').write_text(FAKE_OFFICIAL_FAN)
    (models / 'convnext_utils.py').write_text('import torch.nn as nn\n\n\ndef STEM():\n'
                                              '    return nn.Conv2d(3, 8, 3, stride=4, padding=1)\n')
    return root


def test_backbone_benchmark_times_the_official_code_in_its_own_process(tmp_path):
    checkout = _fake_checkout(tmp_path / 'FAN')
    out = tmp_path / 'b.json'
    load_tool('analysis/benchmark_backbone').main([
        '--device', 'cpu', '--size', '64', '--batch', '1', '--warmup', '0', '--repeats', '1', '--precision', 'fp32',
        '--models', 'official_fan_s_hybrid', 'official_fan_s_hybrid+cp', 'fan_t_hybrid', '--reference', 'tv_resnet50',
        '--official-checkout', str(checkout), '--json', str(out)])
    res = json.loads(out.read_text())
    rows = {(r['process'], r['spec']): r for r in res['rows']}
    assert set(rows) == {('official', 'official_fan_s_hybrid'), ('official', 'official_fan_s_hybrid+cp'),
                         ('official', 'tv_resnet50'), ('fan_mm', 'fan_t_hybrid'), ('fan_mm', 'tv_resnet50')}
    anchor = rows['official', 'official_fan_s_hybrid']
    assert anchor['params_m'] == pytest.approx(224 / 1e6) and anchor['train_vs_official'] == pytest.approx(1.0)
    ours = rows['fan_mm', 'fan_t_hybrid']
    # a time ratio through each process's own reference
    assert ours['train_vs_official'] == pytest.approx(ours['train_ratio'] / anchor['train_ratio'])
    assert res['official_anchor'] == 'official_fan_s_hybrid'
    assert res['official_commit'] is None  # not a git checkout (tmp_path lies outside any repository)
    with pytest.raises(SystemExit, match='must not depend on timm'):
        load_tool('analysis/benchmark_backbone').main([
            '--device', 'cpu', '--models', 'official_fan_s_hybrid', '--reference', 'swin_t',
            '--official-checkout', str(checkout)])
    with pytest.raises(SystemExit, match='not a checkout of NVlabs/FAN'):
        load_tool('analysis/benchmark_backbone').main([
            '--device', 'cpu', '--models', 'official_fan_s_hybrid', '--reference', 'tv_swin_t',
            '--official-checkout', str(tmp_path)])


def test_official_process_imports_timm_from_a_relative_official_timm_folder(tmp_path, monkeypatch):
    """``--official-timm`` given relative to the caller's directory still leads the child's path (the child runs
    in a temporary directory of its own)."""
    checkout = _fake_checkout(tmp_path / 'FAN')
    (tmp_path / 'old_timm' / 'timm').mkdir(parents=True)
    (tmp_path / 'old_timm' / 'timm' / '__init__.py').write_text("__version__ = '0.5.4+stand-in'\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / 'b.json'
    load_tool('analysis/benchmark_backbone').main([
        '--device', 'cpu', '--size', '64', '--batch', '1', '--warmup', '0', '--repeats', '1', '--precision', 'fp32',
        '--models', 'official_fan_s_hybrid', '--reference', 'tv_resnet50', '--official-checkout', 'FAN',
        '--official-timm', 'old_timm', '--json', str(out)])
    res = json.loads(out.read_text())
    assert res['official_env']['timm'] == '0.5.4+stand-in'
    assert res['env']['timm'] != '0.5.4+stand-in'


def test_official_code_imported_with_stand_ins_that_leave_mmdet_alone(tmp_path, monkeypatch):
    import sys

    import mmcv
    import mmdet
    import torch
    from fan_mm.benchmarks import official
    from fan_mm.benchmarks.backbone import build_backbone
    checkout = _fake_checkout(tmp_path / 'FAN')
    monkeypatch.setenv(official.CHECKOUT_ENV, str(checkout))
    try:
        model = build_backbone('official_fan_s_hybrid', 64, torch.device('cpu'))
        assert model.use_checkpoint is False  # the configs' checkpointing only with +cp
        assert build_backbone('official_fan_s_hybrid+cp', 64, torch.device('cpu')).use_checkpoint is True
        # the real packages are back, the stand-ins gone
        assert sys.modules['mmdet'] is mmdet and sys.modules['mmcv'] is mmcv
        assert 'mmcv.runner' not in sys.modules and 'mmdet.models.builder' not in sys.modules
        other = _fake_checkout(tmp_path / 'FAN2')
        with pytest.raises(ValueError, match='needs a process of its own'):
            official.build_official('official_fan_s_hybrid', str(other))
    finally:
        for name in [n for n in sys.modules if n.startswith(official._PACKAGE)]:
            del sys.modules[name]


def test_torchvision_references_give_four_stages():
    import torch
    from fan_mm.benchmarks.backbone import build_backbone
    for name in ('tv_swin_t', 'tv_resnet50'):
        outs = build_backbone(name, 64, torch.device('cpu')).eval()(torch.randn(1, 3, 64, 64))
        assert [o.shape[-1] for o in outs] == [16, 8, 4, 2], name


def test_fan_mm_backbones_compiled_as_the_configs_compile_them():
    # +compile / +cudagraph / +compile_full on a fan_mm backbone go through its own compile_blocks (what
    # the model bases set), static shapes; FAN-Swin and LV-ViT are the mmdet / mmseg backbones, not the timm models
    import torch
    from fan_mm.benchmarks.backbone import build_backbone
    from fan_mm.models.backbones import FANSwin, LVViT
    model = build_backbone('fan_t_hybrid+cudagraph', 64, torch.device('cpu'))
    assert model.compile_blocks == dict(dynamic=False, mode='reduce-overhead', on_cpu=True)
    # +compile_full: what a config gets with compile_blocks=dict(scope='backbone')
    model = build_backbone('fan_t_hybrid+compile_full+cudagraph', 64, torch.device('cpu'))
    assert model.compile_blocks == dict(dynamic=False, mode='reduce-overhead', scope='backbone', on_cpu=True)
    assert build_backbone('fan_t_hybrid', 64, torch.device('cpu')).compile_blocks is False
    assert isinstance(build_backbone('fan_swin_t', 64, torch.device('cpu')), FANSwin)
    assert isinstance(build_backbone('lvvit_s', 64, torch.device('cpu')), LVViT)


def test_backbone_benchmark_rejects_unknown_names():
    from fan_mm.benchmarks.backbone import parse_spec
    with pytest.raises(ValueError, match="unknown backbone 'fan_x'"):
        parse_spec('fan_x')
    with pytest.raises(ValueError, match=r"unknown flag\(s\) \['fast'\]"):
        parse_spec('swin_t+fast')
    assert parse_spec('fan_s_hybrid+cl+compile') == ('fan_s_hybrid', ('cl', 'compile'))
    assert parse_spec('swin_t+cudagraph') == ('swin_t', ('cudagraph',))
    assert parse_spec('fan_s_vit+compile_full') == ('fan_s_vit', ('compile_full',))
    assert parse_spec('fan_s_vit+compile_full+cudagraph') == ('fan_s_vit', ('compile_full', 'cudagraph'))
    with pytest.raises(ValueError, match='pick one'):
        parse_spec('fan_s_vit+compile_full+compile')
    with pytest.raises(ValueError, match='154306'):
        parse_spec('fan_s_hybrid+cp+cudagraph')


def test_model_benchmark_cpu(tmp_path):
    out = tmp_path / 'm.json'
    cfg = str(ROOT / 'configs' / 'toy' / 'maskrcnn_fan_t_hybrid_toy_coco.py')
    load_tool('analysis/benchmark_model').main([
        '--configs', f'toy={cfg}', '--device', 'cpu', '--height', '64', '--width', '96', '--batch', '1',
        '--boxes', '2', '--precision', 'fp32', '--warmup', '0', '--repeats', '1', '--reference', 'toy',
        '--json', str(out)])
    res = json.loads(out.read_text())
    assert res['kind'] == 'model' and (res['height'], res['width'], res['boxes']) == (64, 96, 2)
    (row,) = res['rows']
    assert row['scope'] == 'mmdet' and row['name'] == 'toy'
    assert row['train_s_iter'] > 0 and row['infer_img_s'] > 0 and row['train_ratio'] == pytest.approx(1.0)
    assert row['train_compile']['graphs'] == row['infer_compile']['graphs'] == 0  # eager on a CPU



def test_model_benchmark_whole_backbone_rows(tmp_path):
    # NAME+whole: the config's backbone compiled as one graph (compile_blocks' scope='backbone'); on a CPU with
    # torch.compile's eager backend, so that the compile really happens here
    out = tmp_path / 'm.json'
    cfg = str(ROOT / 'configs' / 'toy' / 'maskrcnn_fan_t_hybrid_toy_coco.py')
    load_tool('analysis/benchmark_model').main([
        '--configs', f'toy={cfg}', f'toy+whole={cfg}', '--device', 'cpu', '--height', '64', '--width', '64',
        '--batch', '1', '--boxes', '2', '--precision', 'fp32', '--warmup', '0', '--repeats', '1',
        '--reference', 'toy', '--json', str(out), '--cfg-options', 'model.backbone.compile_blocks.on_cpu=True',
        'model.backbone.compile_blocks.backend=eager', 'model.backbone.compile_blocks.dynamic=False'])
    blocks, whole = json.loads(out.read_text())['rows']
    assert "'scope'" not in blocks['backbone_compile'] and "'scope': 'backbone'" in whole['backbone_compile']
    assert blocks['train_compile']['graphs'] > 1  # one per block kind and width
    assert whole['train_compile']['graphs'] == 1
    from fan_mm.benchmarks.model import build_model_from_config
    with pytest.raises(ValueError, match=r'has no compile_blocks to compile whole'):
        build_model_from_config(cfg, {'model.backbone.compile_blocks': False}, whole_backbone=True)

def _toy_model_args(config='maskrcnn_fan_t_hybrid_toy_coco.py', warmup=0, batch=1):
    """benchmark_model.py arguments for one toy config named 'toy', small and on the CPU."""
    cfg = str(ROOT / 'configs' / 'toy' / config)
    return ['--configs', f'toy={cfg}', '--device', 'cpu', '--height', '64', '--width', '64', '--batch', str(batch),
            '--boxes', '2', '--precision', 'fp32', '--warmup', str(warmup), '--repeats', '1', '--reference', '']


def test_model_benchmark_profiles_the_training_iteration(tmp_path, capsys):
    out = tmp_path / 'm.json'
    args = _toy_model_args()
    load_tool('analysis/benchmark_model').main(args + ['--profile', 'toy', '--json', str(out)])
    res = json.loads(out.read_text())
    (p,) = res['profiles']
    assert p['spec'] == 'toy' and p['steps'] == 3 and 'profile' not in res['rows'][0]
    ops = {o['op'] for o in p['ops']}
    assert 'aten::convolution_backward' in ops or 'ConvolutionBackward0' in ops, ops  # the backward ran
    assert 'Top ops of one training iteration of toy' in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"--profile \['swin'\]: not among the --configs names \['toy'\]"):
        load_tool('analysis/benchmark_model').main(args + ['--profile', 'swin'])


@pytest.mark.parametrize('config, batch, parts', [
    ('maskrcnn_fan_t_hybrid_toy_coco.py', 1, ('neck', 'rpn_head.loss_and_predict', 'roi_head.loss')),
    # batch 2: UperNet's pooling module normalises 1x1 maps with BatchNorm
    ('upernet_fan_t_hybrid_toy_cityscapes.py', 2, ('decode_head (train)', 'auxiliary_head (train)')),
])
def test_model_benchmark_times_the_iteration_part_by_part(config, batch, parts, tmp_path, capsys):
    out = tmp_path / 'm.json'
    args = _toy_model_args(config, warmup=1, batch=batch)
    load_tool('analysis/benchmark_model').main(args + ['--phases', 'toy', '--json', str(out)])
    res = json.loads(out.read_text())
    (p,) = res['phases']
    assert p['spec'] == 'toy' and p['steps'] == 5 and 'phases' not in res['rows'][0]
    rows = {r['phase']: r for r in p['phases']}
    from fan_mm.benchmarks.model import OPTIMIZER_STEP_PHASE
    for name in ('backbone',) + parts + ('backward', OPTIMIZER_STEP_PHASE, 'zero_grad',
                                         'wait for the GPU at the end'):
        assert rows[name]['calls_per_step'] == 1 and rows[name]['ms_per_step'] > 0, name
    assert rows['backward']['syncs_per_step'] is None  # counted on CUDA devices only
    # own times: the parts are not counted again in the forward around them, so the phases add up to the step
    assert sum(r['ms_per_step'] for r in p['phases']) == pytest.approx(p['step_ms'])
    assert sum(r['share'] for r in p['phases']) == pytest.approx(1.)
    assert rows['loss forward, outside the parts']['ms_per_step'] < rows['backbone']['ms_per_step']
    assert 'Host wall time of one training iteration of toy by phase' in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"--phases \['swin'\]: not among the --configs names \['toy'\]"):
        load_tool('analysis/benchmark_model').main(args + ['--phases', 'swin'])


def test_phase_clock_counts_own_time_and_syncs_where_they_happen(monkeypatch):
    import warnings

    import torch
    from fan_mm.benchmarks import phases
    ticks = iter([0., 1., 3., 4., 10., 10., 10., 12.])
    clock = phases.PhaseClock(clock=lambda: next(ticks))
    modes = []
    monkeypatch.setattr(torch.cuda, 'get_sync_debug_mode', lambda: 0)
    monkeypatch.setattr(torch.cuda, 'set_sync_debug_mode', modes.append)
    with phases.count_syncs(clock):
        with clock.phase('forward'):  # 0 .. 10, of which 'head' 1 .. 3 and 'head' 4 .. 10
            with clock.phase('head'):
                warnings.warn('called a synchronizing CUDA operation')
            with clock.phase('head'):
                warnings.warn('called a synchronizing CUDA operation')
                warnings.warn('called a synchronizing CUDA operation')
            with pytest.warns(UserWarning, match='something else'):  # other warnings are not swallowed
                warnings.warn('something else')
        with clock.phase('backward'):  # 10 .. 12
            pass
        warnings.warn('called a synchronizing CUDA operation')
    assert modes == ['warn', 0]  # the debug mode is put back
    assert clock.own_s == {'forward': 2., 'head': 8., 'backward': 2.}
    assert list(clock.own_s) == ['forward', 'head', 'backward']  # in the order they began
    assert clock.calls == {'forward': 1, 'head': 2, 'backward': 1}
    assert clock.syncs == {'head': 3, phases.OUTSIDE: 1}


def test_phases_of_puts_the_model_back():
    import torch
    import torch.nn as nn
    from fan_mm.benchmarks.phases import PhaseClock, phases_of

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.neck = nn.Linear(2, 2), nn.Identity()
            self.neck.forward = lambda x: x * 2  # an instance attribute, as a compiled backbone's forward

        def forward(self, x):
            return self.neck(self.backbone(x))
    model, clock = Model(), PhaseClock()
    neck_forward = model.neck.forward
    with phases_of(model, clock) as wrapped:
        model(torch.ones(1, 2))
    assert wrapped == ['forward', 'forward'] and set(clock.calls) == {'backbone', 'neck'}
    assert 'forward' not in model.backbone.__dict__ and model.neck.forward is neck_forward


def test_phases_count_real_cuda_synchronisations_where_they_happen():
    import torch
    if not torch.cuda.is_available():
        pytest.skip('needs a CUDA device')
    from fan_mm.benchmarks.phases import NO_CLOCK, measure_phases

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.neck = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

        def forward(self, x):
            y = self.neck(self.backbone(x))
            if y.sum().item() > 1e30:  # one synchronisation, in the model's forward outside backbone and neck
                y = y * 0
            return y
    model = Model().cuda()
    x = torch.randn(4, 8, device='cuda')

    def step(clock):
        with clock.phase('forward'):
            y = model(x)
        with clock.phase('backward'):
            y.square().mean().backward()
            y.detach().cpu()  # a copy to the host: a second synchronisation
    step(NO_CLOCK)  # warm-up: CUDA's lazy start is no phase's
    result = measure_phases(step, model, torch.device('cuda'), 'tiny', steps=3)
    syncs = {r['phase']: r['syncs_per_step'] for r in result['phases']}
    assert syncs['forward'] == 1 and syncs['backward'] == 1, syncs
    assert syncs['backbone'] == 0 and syncs['neck'] == 0, syncs
    assert torch.cuda.get_sync_debug_mode() == 0  # put back


def test_compile_stats_count_what_compiles_inside_the_block():
    import torch
    from fan_mm.utils.compile_stats import CompileStats, describe
    torch._dynamo.reset()
    fn = torch.compile(lambda x: x.sin() + 1, backend='eager')
    with CompileStats() as first:
        fn(torch.ones(3))
    with CompileStats() as again:
        fn(torch.ones(3))
    assert first.result['graphs'] == 1 and first.result['compile_s'] > 0 and first.result['trace_s'] > 0
    assert again.result['graphs'] == 0 and again.result['compile_s'] == 0
    assert describe(first.result).startswith('1 graph compiled in ')
    assert describe(again.result) == 'nothing compiled'


def test_compile_stats_count_cuda_graphs_that_inductor_skipped():
    # a graph compiled for CUDA graphs that inductor runs without them launches every kernel from the host:
    # the stats and the log line say so. Inductor reports each skip through this function of torch's (on a
    # CPU, e.g. torch.compile(mode='reduce-overhead') of a CPU tensor's function: 'skipping cudagraphs due
    # to cpu device'), which logs the reason and bumps the counter read here
    from torch._inductor.cudagraph_utils import log_cudagraph_skip_and_bump_counter
    from fan_mm.utils.compile_stats import CompileStats, describe
    with CompileStats() as none:
        pass
    with CompileStats() as skipped:
        log_cudagraph_skip_and_bump_counter('skipping cudagraphs due to a test')
        log_cudagraph_skip_and_bump_counter('skipping cudagraphs due to a test')
    assert none.result['cudagraph_skips'] == 0 and skipped.result['cudagraph_skips'] == 2
    stats = dict(graphs=2, compile_s=1.0, trace_s=0.5, guards_s=0.1, backend_s=0.4, cudagraph_skips=2)
    assert describe(stats) == ('2 graphs compiled in 1.0 s (dynamo tracing 0.5 s, guards 0.1 s, AOTAutograd + '
                               'inductor 0.4 s); CUDA graphs skipped for 2 graphs, which launch their kernels '
                               "from the host (torch logged why in a warning)")
    assert 'skipped' not in describe(dict(stats, cudagraph_skips=0))


def test_compile_stats_count_the_backward_compiled_at_the_first_backward():
    # AOTAutograd compiles a graph's backward lazily, outside the frame's compile; with an empty kernel cache
    # that is about half of a training warm-up, and the stats once left it out
    import torch
    from fan_mm.utils.compile_stats import CompileStats, describe
    torch._dynamo.reset()
    model = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU()) for _ in range(10)])
    compiled = torch.compile(model, backend='aot_eager')
    with CompileStats() as forward:
        loss = compiled(torch.randn(2, 8)).sum()
    with CompileStats() as backward:
        loss.backward()
    assert forward.result['graphs'] == 1 and forward.result['backward_s'] == 0
    assert backward.result['graphs'] == 0 and backward.result['backward_s'] > 0
    assert backward.result['compile_s'] == pytest.approx(backward.result['backward_s'], abs=1e-3)
    with CompileStats() as step:
        torch._dynamo.reset()  # empties dynamo's timers: the stats count from here on, never below zero
        torch.compile(model, backend='aot_eager')(torch.randn(2, 8)).sum().backward()
    assert step.result['graphs'] == 1 and min(v for k, v in step.result.items() if k.endswith('_s')) >= 0
    assert step.result['compile_s'] == pytest.approx(step.result['frames_s'] + step.result['backward_s'], abs=2e-3)
    assert ', inductor backward ' in describe(step.result)
    assert ', inductor backward ' not in describe(forward.result)


def test_model_table_says_what_the_warm_up_compiled():
    from fan_mm.benchmarks.results import markdown_table
    stats = dict(graphs=12, compile_s=16.1, trace_s=8.3, guards_s=1.5, backend_s=3.1, aot_cache_hits=12,
                 aot_cache_misses=0, aot_cache_bypasses=0, inductor_cache_hits=18, inductor_cache_misses=0)
    row = dict(name='fan', backbone_compile='config', params_m=1., train_s_iter=0.1, infer_ms=20., train_warmup_s=17.2,
               infer_warmup_s=4.7, train_compile=stats, infer_compile=dict(stats, graphs=0))
    table = markdown_table(dict(kind='model', env=dict(device='cuda', gpu='GPU', torch='2.11'), precision='fp16',
                                batch=2, height=800, width=1344, boxes=12, rows=[row]))
    assert '| 17.2 | 4.7 |' in table
    assert ('- fan, train: 12 graphs compiled in 16.1 s (dynamo tracing 8.3 s, guards 1.5 s, AOTAutograd + '
            'inductor 3.1 s; AOTAutograd cache 12 hits / 0 misses, inductor cache 18 / 0)') in table
    assert 'fan, infer' not in table


def test_model_benchmark_compile_backbone_options(monkeypatch):
    """--compile-backbone cudagraph reaches compile_trunk_blocks as mode='reduce-overhead', static shapes, for
    the backbones their config leaves eager (here the compile itself is recorded, not run: inductor on CPU
    takes minutes; tests/models/test_fast_paths.py compiles blocks for real). A fan_mm config compiles its
    own blocks (on a GPU) and is not compiled a second time; +eager / --no-compile turn that off."""
    import fan_mm.layers as layers
    from fan_mm.benchmarks.model import bench_model
    tool = load_tool('analysis/benchmark_model')
    assert tool.parse_args([]).compile_backbone is None and tool.parse_args([]).no_compile is False
    assert tool.parse_args(['--compile-backbone']).compile_backbone == 'default'
    assert tool.parse_args(['--compile-backbone', 'cudagraph']).compile_backbone == 'cudagraph'
    assert tool.parse_args(['--no-compile']).no_compile is True
    with pytest.raises(SystemExit):
        tool.parse_args(['--compile-backbone', 'fast'])
    seen = []
    monkeypatch.setattr(layers, 'compile_trunk_blocks', lambda model, **opts: seen.append(opts) or 1)
    import torch
    cpu = torch.device('cpu')
    r50 = str(ROOT / 'configs' / 'toy' / 'maskrcnn_r50_toy_coco.py')
    row = bench_model(r50, 1, 64, 64, 1, 'fp32', cpu, 0, 1, compile_backbone='cudagraph')
    assert seen == [dict(dynamic=False, mode='reduce-overhead')]
    assert row['backbone_compile'].startswith('cudagraph')
    with pytest.raises(ValueError, match="compile_backbone='fast'"):
        bench_model(r50, 1, 64, 64, 1, 'fp32', cpu, 0, 1, compile_backbone='fast')
    fan = str(ROOT / 'configs' / 'toy' / 'maskrcnn_fan_t_hybrid_toy_coco.py')
    row = bench_model(fan, 1, 64, 64, 1, 'fp32', cpu, 0, 1, compile_backbone='cudagraph')
    assert row['backbone_compile'] == 'eager (CPU)' and len(seen) == 1  # its own compile_blocks, off on CPU
    row = bench_model(fan, 1, 64, 64, 1, 'fp32', cpu, 0, 1, eager=True)
    assert row['backbone_compile'] == 'eager'


def test_model_benchmark_steps_the_configs_optimizer():
    """The training iteration steps the optimizer the config builds: fan_mm's merged, fused groups; mmengine's
    one group per parameter (mmdet's Swin-T config, or +per_param); +merged merges a foreign config's groups
    without changing a parameter's settings."""
    from fan_mm.benchmarks.model import build_config_optim_wrapper, build_model_from_config, run_model_benchmark
    from fan_mm.benchmarks.results import markdown_table
    toy = str(ROOT / 'configs' / 'toy' / 'maskrcnn_r50_toy_coco.py')
    model, _ = build_model_from_config(toy)
    n_params = len([p for p in model.parameters() if p.requires_grad])
    ours = build_config_optim_wrapper(toy, model).optimizer
    assert len(ours.param_groups) == 2 and all(g['fused'] for g in ours.param_groups)  # decay / no decay
    per_param = build_config_optim_wrapper(toy, model, variant='per_param').optimizer
    assert len(per_param.param_groups) == n_params and per_param.param_groups[0]['fused'] is None

    swin = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
    model, _ = build_model_from_config(swin)
    theirs = build_config_optim_wrapper(swin, model).optimizer
    merged = build_config_optim_wrapper(swin, model, variant='merged').optimizer
    assert len(theirs.param_groups) == len(list(model.parameters()))
    assert len(merged.param_groups) == 2 and merged.param_groups[0]['fused']

    def settings(opt):
        return {id(p): (g['lr'], g['weight_decay']) for g in opt.param_groups for p in g['params']}
    assert settings(merged) == settings(theirs)
    assert sorted({wd for _, wd in settings(theirs).values()}) == [0., 0.05]
    with pytest.raises(ValueError, match='variant'):
        build_config_optim_wrapper(toy, model, variant='fused')

    out = run_model_benchmark([('toy', toy), ('toy+per_param', toy)], 1, 64, 64, 1, 'fp32', 'cpu', 0, 1)
    # the toy recipe clips gradients (configs/toy/_base_/toy_coco.py)
    assert [r['optimizer'] for r in out['rows']] == [
        'OptimWrapper: AdamW, 2 groups, fused, clip_grad',
        f"OptimWrapper: AdamW, {n_params} groups, torch's default, clip_grad"]
    assert '| OptimWrapper: AdamW, 2 groups, fused, clip_grad |' in markdown_table(out)
    for bad in ('toy+eager+whole', 'toy+merged+per_param', 'toy+fast'):
        with pytest.raises(ValueError, match='tags'):
            run_model_benchmark([(bad, toy)], 1, 64, 64, 1, 'fp32', 'cpu', 0, 1)


def test_model_benchmark_triton_tag_sets_the_config_switch():
    """NAME+triton runs the config with its backbone's compile_blocks holding depthwise='triton' (the switch a
    user sets), not with +eager, not for a backbone without compile_blocks, and on a CUDA device only (on a
    CPU the blocks stay eager and nothing would be routed: a row named for what it did not time)."""
    from fan_mm.benchmarks.model import build_model_from_config, run_model_benchmark
    toy = str(ROOT / 'configs' / 'toy' / 'maskrcnn_fan_t_hybrid_toy_coco.py')
    model, _ = build_model_from_config(toy, triton_depthwise=True)
    assert model.backbone.compile_blocks['depthwise'] == 'triton'
    assert 'depthwise' not in build_model_from_config(toy)[0].backbone.compile_blocks
    r50 = str(ROOT / 'configs' / 'toy' / 'maskrcnn_r50_toy_coco.py')
    with pytest.raises(ValueError, match="has no compile_blocks to set depthwise='triton' in"):
        build_model_from_config(r50, triton_depthwise=True)
    with pytest.raises(ValueError, match=r'tags \+eager \+triton; .*\+eager / \+triton'):
        run_model_benchmark([('toy+eager+triton', toy)], 1, 64, 64, 1, 'fp32', 'cpu', 0, 1)
    with pytest.raises(ValueError, match='toy\\+triton: the Triton depthwise kernels run on CUDA devices only, '
                                         'not on cpu'):
        run_model_benchmark([('toy+triton', toy)], 1, 64, 64, 1, 'fp32', 'cpu', 0, 1)


def test_model_benchmark_runs_the_configs_optim_wrapper(monkeypatch):
    """The iteration is mmengine's: the wrapper's clipping runs (it logs the gradient norm as the runner's
    does), accumulation steps the optimizer every N-th iteration only, and the precision picks the wrapper."""
    import torch
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper

    from fan_mm.benchmarks.model import bench_model, build_config_optim_wrapper, build_model_from_config
    toy = str(ROOT / 'configs' / 'toy' / 'maskrcnn_fan_t_hybrid_toy_coco.py')
    cpu = torch.device('cpu')
    hub = MessageHub.get_current_instance()
    hub.log_scalars.pop('train/grad_norm', None)
    steps = []
    real_step = OptimWrapper.step
    monkeypatch.setattr(OptimWrapper, 'step', lambda self, **kw: steps.append(1) or real_step(self, **kw))
    bench_model(toy, 1, 64, 64, 1, 'fp32', cpu, 1, 2, eager=True)
    assert len(steps) == 3 and len(hub.log_scalars['train/grad_norm'].data[0]) == 3  # 1 warm-up + 2 timed, clipped
    steps.clear()
    row = bench_model(toy, 1, 64, 64, 1, 'fp32', cpu, 1, 3, eager=True,
                      cfg_options={'optim_wrapper.accumulative_counts': 2})
    assert len(steps) == 2 and row['optimizer'].endswith('clip_grad, accumulating 2')  # iterations 2 and 4

    model, _ = build_model_from_config(toy)
    with pytest.raises(ValueError, match="precision='fp16' on the CPU: mmengine's AmpOptimWrapper"):
        build_config_optim_wrapper(toy, model, 'fp16')
    with pytest.raises(ValueError, match='precision'):
        build_config_optim_wrapper(toy, model, 'fp8')


def test_model_benchmark_bad_entry():
    with pytest.raises(SystemExit, match='NAME=CONFIG'):
        load_tool('analysis/benchmark_model').main(['--configs', 'no_equals_sign', '--device', 'cpu'])


def test_autocast_census_counts_casts_and_saved_tensors():
    import torch
    from fan_mm.benchmarks.backbone import autocast_census, build_backbone
    cpu = torch.device('cpu')
    bf16 = autocast_census('fan_t_hybrid', 1, 64, 'bf16', cpu)
    model = build_backbone('fan_t_hybrid', 64, cpu)
    from fan_mm.models.fan import ConvNeXtBlock, DWConvMlp
    n_weighted = sum(1 for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    n_gammas = sum(1 for m in model.modules() if isinstance(m, DWConvMlp))
    n_stem_norms = sum(1 for m in model.modules() if isinstance(m, ConvNeXtBlock))
    # autocast casts weight and bias of every linear / conv once per call (all have biases in FAN, and
    # each runs once per forward); fan_mm casts each DWConvMlp gamma, and the bias of each ConvNeXt block
    # norm (its weight is rescaled first, so that cast counts as an activation's)
    assert bf16['param_casts'] == 2 * n_weighted + n_gammas + n_stem_norms
    assert bf16['activation_casts'] > 0 and bf16['casts'] == bf16['param_casts'] + bf16['activation_casts']
    assert sum(m['casts'] for m in bf16['by_module']) <= bf16['casts']
    fp32 = autocast_census('fan_t_hybrid', 1, 64, 'fp32', cpu)
    assert fp32['casts'] == 0  # no autocast, no casts
    # under autocast the backward keeps float32 norm inputs *and* low-precision copies for the linears
    assert bf16['saved_mib'] > fp32['saved_mib'] > 0
    # the step's operations: more in the backward than in the forward; the casts are operations too
    assert bf16['backward_ops'] > bf16['forward_ops'] > fp32['forward_ops'] > 0
    assert bf16['forward_ops'] - fp32['forward_ops'] >= bf16['casts']
    # FLOPs of forward + backward: about three forwards (the first conv has no input gradient)
    from fan_mm.benchmarks.backbone import flop_counter
    with flop_counter() as forward:
        model(torch.randn(1, 3, 64, 64))
    assert 2.5 < fp32['train_gflop'] * 1e9 / forward.get_total_flops() <= 3


@pytest.mark.parametrize('groups, transposed', [(1, False), (8, False), (4, True)])
def test_flop_counter_counts_grouped_convolution_backward(groups, transposed):
    # by hand: a 3x3 conv, 8 -> 16 channels (groups 1 or 8) on 2 x 8 x 10 x 12, stride 1, padding 1:
    # forward 2 * (2 * 10 * 12 positions) * 16 filters * (8 / groups) * 9 taps; each gradient the same again
    import torch
    from fan_mm.benchmarks.backbone import flop_counter
    expected = 2 * (2 * 10 * 12) * 16 * (8 // groups) * 9
    if transposed:  # 16 -> 8 channels the other way: the same multiply-adds
        conv = torch.nn.ConvTranspose2d(16, 8, 3, padding=1, groups=groups)
        x = torch.randn(2, 16, 10, 12, requires_grad=True)
    else:
        conv = torch.nn.Conv2d(8, 16, 3, padding=1, groups=groups)
        x = torch.randn(2, 8, 10, 12, requires_grad=True)
    with flop_counter() as counted:
        conv(x).sum().backward()
    assert counted.get_total_flops() == 3 * expected


def test_every_listed_backbone_builds_in_a_fresh_process():
    """A fresh interpreter, as the tool runs: a timm name registered only by ``fan_mm.models`` (LV-ViT,
    FAN-Swin) used to be unknown there, while in-process tests had the registration from earlier imports."""
    import subprocess
    import sys
    code = ('from fan_mm.benchmarks.backbone import BACKBONES\n'
            # timm-name builders first: the fan_mm ones import fan_mm.models, which would hide the fault
            'for name, (_, build) in sorted(BACKBONES.items(), key=lambda kv: not hasattr(kv[1][1], "needs_size")):\n'
            '    if name.startswith("official_"): continue\n'
            '    m = build(64) if getattr(build, "needs_size", False) else build()\n'
            '    assert sum(p.numel() for p in m.parameters()) > 1e6, name\n'
            'print("built", len(BACKBONES))')
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(__import__('os').environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'built' in proc.stdout


def test_gpu_busy_time_merges_overlapping_kernels():
    # busy = time covered by some kernel (overlaps counted once), span = first start to last end:
    # [0, 4] and [2, 5] overlap -> 5; [7, 8] -> 1; idle 5..7 and 8..10
    from fan_mm.benchmarks.profiling import busy_and_span
    assert busy_and_span([(7., 8.), (0., 4.), (2., 5.), (9.5, 10.), (3., 3.5)]) == (6.5, 10.)
    assert busy_and_span([]) == (0., 0.)


def test_profile_table_says_how_busy_the_gpu_was():
    from fan_mm.benchmarks.results import markdown_table
    profile = dict(spec='fan', ms_per_step_total=22.0, kernels_per_step=2000, kernel_ms_per_step=22.0,
                   busy_ms_per_step=21.9, span_ms_per_step=31.7,
                   ops=[dict(op='aten::mm', ms_per_step=2.5, share=0.11, calls_per_step=168)])
    table = markdown_table(dict(kind='backbone', env=dict(device='cuda', gpu='GPU', torch='2.11'), precision='bf16',
                                batch=2, size=896, rows=[], profiles=[profile]))
    assert 'GPU busy 21.9 of 31.7 ms per step, idle while it waits for the CPU' in table
    profile.update(kernel_ms_by_class={'matrix product': 3.0, 'inductor fused (elementwise, reductions)': 1.0},
                   kernels=[dict(kernel='nvjet_hsh_256x128', kind='matrix product', ms_per_step=3.0, calls_per_step=9)])
    table = markdown_table(dict(kind='backbone', env=dict(device='cuda', gpu='GPU', torch='2.11'), precision='bf16',
                                batch=2, size=896, rows=[], profiles=[profile]))
    assert '| matrix product | 3.00 | 75.0% |' in table
    assert '| `nvjet_hsh_256x128` | matrix product | 3.00 | 9 |' in table


@pytest.mark.parametrize('name, kind', [
    ('sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1', 'matrix product'),
    ('nvjet_hsh_128x256_64x4_2x1_v_bz_coopA_TNN', 'matrix product'),
    ('triton_tem_fused_addmm_0', 'matrix product'),
    ('sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc', 'convolution'),
    ('void cudnn::cnn::conv2d_grouped_direct_kernel<false, true, false, false, false, 0>', 'convolution'),
    ('sm90_xmma_wgrad_implicit_gemm_indexed', 'convolution'),
    ('void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits>', 'attention'),
    ('cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x64_4x1', 'attention'),
    ('dgrad2d_c1_k1_nhwc_specialized', 'convolution'),
    ('triton_per_fused__native_batch_norm_legit_functional_add_gelu_12', 'inductor fused (elementwise, reductions)'),
    ('triton_poi_fused__to_copy_convert_element_type_3', 'inductor fused (elementwise, reductions)'),
    ('triton_tem_fused_convolution_5', 'convolution'),
    ('_dw_forward_stream_kernel', 'convolution'),  # fan_mm's Triton depthwise kernels
    ('_dw_weight_grad_kernel', 'convolution'),
    ('Memcpy DtoD (Device -> Device)', 'copy / fill'),
    ('void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>', 'other'),
])
def test_gpu_kernels_are_told_apart_by_kind(name, kind):
    from fan_mm.benchmarks.profiling import kernel_class
    assert kernel_class(name) == kind


def test_gpu_ranges_of_annotations_are_not_counted_as_kernels():
    from types import SimpleNamespace

    import torch
    from fan_mm.benchmarks.profiling import is_gpu_kernel
    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU

    def event(name, device=cuda, annotation=False):
        return SimpleNamespace(name=name, device_type=device, is_user_annotation=annotation)
    assert is_gpu_kernel(event('void roi_align_backward_cuda_kernel<c10::Half>'))
    assert is_gpu_kernel(event('Memcpy HtoD (Pageable -> Device)'))
    assert not is_gpu_kernel(event('Optimizer.step#AdamW.step', annotation=True))  # spans the AdamW kernels
    assert not is_gpu_kernel(event('## Call CompiledFxGraph fuovmhoc ##'))
    assert not is_gpu_kernel(event('aten::mm', device=cpu))


def test_census_splits_the_flops_by_operator():
    import torch
    from fan_mm.benchmarks.backbone import autocast_census
    c = autocast_census('fan_t_hybrid', 1, 64, 'fp32', torch.device('cpu'))
    assert set(c['gflop_by_op']) >= {'aten.mm', 'aten.addmm', 'aten.convolution', 'aten.convolution_backward'}
    assert sum(c['gflop_by_op'].values()) == pytest.approx(c['train_gflop'])


def test_noise_decay_benchmark_runs_on_cpu_and_records_its_environment(tmp_path):
    """``--device cpu`` runs the whole benchmark (both sides on the CPU, so they must agree exactly) and writes
    the CSV and the JSON with the settings and the environment."""
    import numpy as np
    from PIL import Image
    from skimage import data
    photos = tmp_path / 'photos'
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / 'astronaut.png')
    Image.fromarray(data.coffee()).save(photos / 'coffee.png')
    out = tmp_path / 'out'
    load_tool('analysis/benchmark_noise_decay').main([
        str(photos), '--out', str(out), '--models', 'fan_small_12_p16_224', '--cpu-images', '1', '--gpu-images', '3',
        '--device', 'cpu'])
    res = json.loads((out / 'benchmark.json').read_text())
    assert res['kind'] == 'noise_decay' and res['device'] == 'cpu' and res['env']['device'] == 'cpu'
    assert res['images'] == ['astronaut', 'coffee'] and res['gpu_images'] == 3
    (row,) = res['rows']
    assert row['model'] == 'fan_small_12_p16_224' and row['num_blocks'] == 12
    assert row['max_rel_diff_perturbation'] == 0 and row['share_equal_counts'] == 1
    assert row['cpu_s_per_image'] > 0 and row['gpu_s_per_image'] > 0
    assert np.isclose(row['speedup'], row['cpu_s_per_image'] / row['gpu_s_per_image'])
    assert (out / 'benchmark.csv').read_text().splitlines()[0].startswith('model,num_blocks,')
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match='needs a CUDA device'):
            load_tool('analysis/benchmark_noise_decay').main([str(photos), '--out', str(out)])


@pytest.mark.parametrize('k', [3, 7])
@pytest.mark.parametrize('with_bias', [True, False])
def test_depthwise_taps_equal_the_convolution_with_gradients(k, with_bias):
    import torch
    import torch.nn.functional as F
    from fan_mm.benchmarks.depthwise import depthwise_conv2d_taps
    gen = torch.Generator().manual_seed(k)
    x = torch.randn(2, 5, 9, 11, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(5, 1, k, k, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, generator=gen, requires_grad=True) if with_bias else None
    ref = F.conv2d(x, w, b, padding=k // 2, groups=5)
    out = depthwise_conv2d_taps(x, w, b)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    g = torch.randn_like(ref)
    inputs = [x, w] + ([b] if with_bias else [])
    for a, r in zip(torch.autograd.grad(out, inputs, g), torch.autograd.grad(ref, inputs, g)):
        torch.testing.assert_close(a, r, rtol=0, atol=1e-11)
    with pytest.raises(ValueError, match='odd kernel sizes'):
        depthwise_conv2d_taps(x, torch.zeros(5, 1, 2, 2, dtype=torch.float64), None)


def test_depthwise_shapes_of_fan_hybrid_are_its_stem_and_channel_mlps():
    import torch
    from fan_mm.benchmarks.backbone import build_backbone
    from fan_mm.benchmarks.depthwise import collect_depthwise_shapes
    net = build_backbone('fan_s_hybrid', 64, torch.device('cpu'))
    shapes = collect_depthwise_shapes(net, torch.zeros(1, 3, 64, 64))
    # ConvNeXt stem: 3 blocks at stride 4 (128 ch), 3 at stride 8 (256); 10 FAN blocks x 2 convs of 4 x 384 ch
    assert dict(shapes) == {(128, 7, 16, 16): 3, (256, 7, 8, 8): 3, (1536, 3, 4, 4): 20}


def test_depthwise_benchmark_cpu(tmp_path, capsys):
    out = tmp_path / 'd.json'
    load_tool('analysis/benchmark_depthwise').main([
        '--device', 'cpu', '--model', 'fan_t_hybrid', '--size', '32', '--batch', '1', '--warmup', '0',
        '--repeats', '1', '--precision', 'fp32', '--routes', 'channels_last', 'contiguous', '--json', str(out)])
    res = json.loads(out.read_text())
    assert res['kind'] == 'depthwise' and res['model'] == 'fan_t_hybrid' and res['env']['torch']
    shapes = {(s['channels'], s['kernel'], s['height'], s['width']): s['calls_per_step'] for s in res['shapes']}
    assert len(res['rows']) == 2 * len(shapes)
    for r in res['rows']:
        assert r['route'] in ('channels_last', 'contiguous') and r['forward_ms'] > 0 and r['train_ms'] > 0
        # float32 on the CPU: within float32 rounding of the float64 computation
        assert max(r['error_out'], r['error_grad_input'], r['error_grad_weight']) < 1e-5
    for route, t in res['totals'].items():
        rows = [r for r in res['rows'] if r['route'] == route]
        assert t['train_ms_per_step'] == pytest.approx(sum(r['train_ms'] * r['calls_per_step'] for r in rows))
    table = capsys.readouterr().out
    assert '| channels_last |' in table and 'fan_t_hybrid at 1 x 3 x 32 x 32' in table and 'eager calls' in table
    assert res['cuda_graph'] is False


def test_depthwise_benchmark_bad_input(capsys):
    from fan_mm.benchmarks.depthwise import run_depthwise_benchmark, sweep_triton_launch
    with pytest.raises(ValueError, match="unknown route.*'winograd'"):
        run_depthwise_benchmark('fan_t_hybrid', routes=['winograd'], device='cpu')
    with pytest.raises(ValueError, match="unknown model 'fan_xl'"):
        run_depthwise_benchmark('fan_xl', device='cpu')
    with pytest.raises(ValueError, match='tv_resnet50 has no depthwise convolutions'):
        run_depthwise_benchmark('tv_resnet50', size=32, batch=1, device='cpu', routes=['channels_last'])
    with pytest.raises(SystemExit, match='cuda_graph: CUDA graphs need a CUDA device, got cpu'):
        load_tool('analysis/benchmark_depthwise').main(['--device', 'cpu', '--cuda-graph'])
    # the launch-settings sweep of the Triton kernels: sizes as HxW, a CUDA device
    with pytest.raises(SystemExit):
        load_tool('analysis/benchmark_depthwise').main(['--sweep-triton', '896'])
    with pytest.raises(SystemExit, match='sweep_triton_launch times Triton kernels on a CUDA device, got cpu'):
        load_tool('analysis/benchmark_depthwise').main(['--device', 'cpu', '--sweep-triton', '64x64'])
    with pytest.raises(ValueError, match="unknown model 'fan_xl'"):
        sweep_triton_launch('fan_xl', device='cpu')
    with pytest.raises(SystemExit):
        load_tool('analysis/benchmark_depthwise').main(['--kernel-sizes', '3'])
    assert '--kernel-sizes selects the shapes of --sweep-triton; give --sweep-triton too' in capsys.readouterr().err


def test_triton_launch_choice_weights_calls_and_needs_every_shape():
    """--sweep-triton's choice, by hand: per kernel size the setting with the least calls-weighted total over
    all shapes; one missing on a shape (clipped there) does not compete, however fast elsewhere. And the
    committed H100 sweep's choice follows from its rows."""
    import json
    from fan_mm.benchmarks.depthwise import choose_launch, sweep_table

    def setting(rows, block_w, ms):
        return dict(rows=rows, block_w=block_w, block_c=64, num_warps=4, ms=ms)
    rows = [dict(kernel=3, calls_per_step=20, cudnn_ms=0.05, stream=[setting(8, 16, 0.04), setting(16, 16, 0.03)]),
            dict(kernel=3, calls_per_step=2, cudnn_ms=0.5,
                 stream=[setting(8, 16, 0.1), setting(16, 16, 0.5), setting(4, 8, 0.001)]),
            dict(kernel=7, calls_per_step=3, cudnn_ms=0.2, row_kernel_ms=0.15, stream=[setting(16, 8, 0.12)])]
    chosen = choose_launch(rows)
    # (8, 16): 0.04 * 20 + 0.1 * 2 = 1.0; (16, 16): 0.03 * 20 + 0.5 * 2 = 1.6; (4, 8) is timed on one shape only
    assert chosen[3] == dict(rows=8, block_w=16, block_c=64, num_warps=4, weighted_ms=pytest.approx(1.0),
                             cudnn_weighted_ms=pytest.approx(0.05 * 20 + 0.5 * 2))
    assert chosen[7]['row_kernel_weighted_ms'] == pytest.approx(0.45) and chosen[7]['rows'] == 16
    assert 'row_kernel_weighted_ms' not in chosen[3]  # not timed there
    table = sweep_table(dict(chosen=chosen))
    assert '| 3x3 | (8, 16, 64, 4) | 1.000 | - | 2.000 |' in table
    assert '| 7x7 | (16, 8, 64, 4) | 0.360 | 0.450 | 0.600 |' in table
    # the committed sweeps choose again what they recorded: the first kernel's and the prefetching kernel's
    for name in ('depthwise_triton_launch_sweep_h100.json', 'depthwise_triton_launch_sweep_prefetch_h100.json'):
        committed = json.loads((ROOT / 'docs' / 'benchmark_results' / name).read_text())
        again = choose_launch(committed['rows'])
        assert {str(k): v for k, v in again.items()} == committed['chosen'], name
    assert (again[3]['rows'], again[3]['block_w'], again[3]['block_c'], again[3]['num_warps']) == (8, 8, 64, 4)
    # the kernels launch with the latest sweep's choice
    if importlib.util.find_spec('triton') is not None:
        from fan_mm.layers.depthwise_triton import STREAM_LAUNCH
        assert STREAM_LAUNCH == {k: tuple(again[k][key] for key in ('rows', 'block_w', 'block_c', 'num_warps'))
                                 for k in (3, 7)}


def test_depthwise_cuda_graph_replays_forward_and_backward():
    # --cuda-graph times graph replays: they must redo the captured conv and its backward on the inputs'
    # current data (a graph that captured nothing, or only the forward, would time nothing real)
    import torch
    import torch.nn.functional as F
    if not torch.cuda.is_available():
        pytest.skip('needs a CUDA device')
    from fan_mm.benchmarks.depthwise import _cuda_graphed
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 7, device='cuda').contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.nn.Parameter(torch.randn(8, 1, 3, 3, device='cuda'))

    def step():
        x.grad = w.grad = None
        F.conv2d(x, w, padding=1, groups=8).square().sum().backward()
    replay = _cuda_graphed(step)
    with torch.no_grad():
        x.mul_(-2.)  # new values in the captured memory
    replay()
    torch.cuda.synchronize()
    xr, wr = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    F.conv2d(xr, wr, padding=1, groups=8).square().sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(w.grad, wr.grad)


def test_depthwise_shapes_refuse_a_strided_conv_by_name():
    import torch
    from torch import nn
    from fan_mm.benchmarks.depthwise import collect_depthwise_shapes
    net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8))
    with pytest.raises(ValueError, match=r'depthwise conv 1: .*stride \(2, 2\)'):
        collect_depthwise_shapes(net, torch.zeros(1, 3, 8, 8))
