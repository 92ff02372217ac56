"""FAN-ViT / FAN-Hybrid compute what the official models compute (goldens made with NVlabs/FAN).

For each golden model: the official-format checkpoint is rebuilt from its key dump with the golden recipe,
loaded through ``timm.create_model(..., pretrained=True, pretrained_cfg_overlay=dict(file=...))``, and the
logits and every tap (official module names) must be within 1e-4 of the official run (float32, CPU).
"""
import pytest
import timm
import torch

import fan_mm.models  # noqa: F401  (registers the models)
from fan_test_utils import GOLDEN, golden, golden_input, official_state_dict, tap_error

TOL = 1e-4
# golden file stems; fan_small_12_p4_hybrid_288x192 is fan_small_12_p4_hybrid at another input size (288 x 192,
# the others 160 x 224)
MODELS = ['fan_tiny_12_p16_224', 'fan_small_12_p16_224', 'fan_base_18_p16_224', 'fan_tiny_8_p4_hybrid',
          'fan_small_12_p4_hybrid', 'fan_base_16_p4_hybrid', 'fan_small_12_p4_hybrid_288x192']
# Official module name -> fan_mm module name. fan_mm keeps the official names (so the official
# state_dict keys load unchanged); the table is the identity and says so explicitly.
TAP_MODULES = {}


@pytest.fixture(scope='module')
def golden_model(golden_file):
    """The golden-weight model of ``name``, loaded once per module through timm's pretrained path."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = timm.create_model(
                name, pretrained=True, pretrained_cfg_overlay=dict(file=golden_file(name))).eval()
        return cache[name]
    return get


@pytest.fixture(scope='module')
def golden_file(tmp_path_factory):
    root = tmp_path_factory.mktemp('fan_golden')

    def make(name):
        path = root / f'{name}.pth.tar'
        if not path.exists():
            torch.save(official_state_dict(GOLDEN / f'{name}.keys.txt'), path)
        return str(path)
    return make


def _run_with_taps(model, x, taps, hybrid):
    """One forward (through forward_intermediates) that records the official taps with hooks."""
    got = {}
    handles = []
    for tap in taps:
        def hook(_, __, out, tap=tap):
            got[tap] = out[0] if isinstance(out, tuple) else out
        handles.append(model.get_submodule(TAP_MODULES.get(tap, tap)).register_forward_hook(hook))
    with torch.no_grad():
        final, inter = model.forward_intermediates(x, stem_indices=[0, 1] if hybrid else None)
        logits = model.forward_head(final)
    for h in handles:
        h.remove()
    return logits, got, inter


@pytest.mark.parametrize('name', MODELS)
def test_golden(name, golden_model):
    meta, arrays = golden(name)
    model = golden_model(meta['model'])
    hybrid = 'hybrid' in name
    logits, taps, inter = _run_with_taps(model, golden_input(meta), meta['taps'], hybrid)

    assert logits.shape == tuple(arrays['logits'].shape)
    assert (logits - torch.from_numpy(arrays['logits'])).abs().max().item() < TOL
    for tap, info in meta['taps'].items():
        assert tuple(taps[tap].shape) == tuple(info['shape']), tap
        assert tap_error(arrays, tap, taps[tap]) < TOL, tap

    # forward_intermediates returns exactly the tapped maps: ConvNeXt stages, FAN blocks, class
    # attention (patch tokens only), in that order
    B, N = taps['patch_embed'].shape[:2]
    names = (['patch_embed.backbone.stages.0', 'patch_embed.backbone.stages.1'] if hybrid else [])
    names += [f'blocks.{i}' for i in range(len(model.blocks))]
    names += [f'cls_attn_blocks.{j}' for j in range(len(model.cls_attn_blocks))]
    assert len(inter) == len(names)
    for tap, feat in zip(names, inter):
        ref = taps[tap]
        if tap.startswith('cls_attn'):
            ref = ref[:, 1:]
        if ref.dim() == 3:
            feat = feat.flatten(2).transpose(1, 2)
        assert torch.equal(feat, ref), tap


def test_stem_layernorm_quirk_is_needed(golden_model):
    """The unbiased-variance ConvNeXt norms matter: a standard LayerNorm misses the golden by > 1e-4."""
    name = 'fan_tiny_8_p4_hybrid'
    meta, arrays = golden(name)
    model = golden_model(name)
    flags = {n: m.unbiased for n, m in model.named_modules() if hasattr(m, 'unbiased')}
    assert flags.pop('patch_embed.backbone.stem.1') is False
    assert flags and all(flags.values())  # every block norm and the downsample norm
    norms = [m for m in model.modules() if hasattr(m, 'unbiased')]
    for m in norms:
        m.unbiased = False
    try:
        with torch.no_grad():
            logits = model(golden_input(meta))
    finally:
        for m, flag in zip(norms, [False] + [True] * (len(norms) - 1)):
            m.unbiased = flag
    assert (logits - torch.from_numpy(arrays['logits'])).abs().max().item() > 10 * TOL


def test_every_golden_is_documented_and_regenerable():
    """tests/data/golden/README.md lists exactly the stored goldens, and make_goldens.py can make each."""
    import importlib.util
    import re
    stored = {p.name[:-len('.npz')] for p in GOLDEN.glob('*.npz') if not p.name.endswith('.buffers.npz')}
    listed = set(re.findall(r'^\| `(\w+)` \|', (GOLDEN / 'README.md').read_text(), re.M))
    assert listed == stored
    spec = importlib.util.spec_from_file_location('make_goldens', GOLDEN / 'make_goldens.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.GOLDENS) == stored
    for name, (_, entry, kwargs, shape) in module.GOLDENS.items():
        meta, _ = golden(name)
        assert (meta['model'], meta['input_shape'], meta.get('kwargs', {})) == (entry, list(shape), kwargs), name
