"""End to end: the two tools on real photos write valid figures, CSVs and arrays; noise behaves."""
import csv
import importlib.util
import os.path as osp

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from fan_mm.analysis.features import build_model, center_crop
from fan_mm.analysis.noise_decay import measure_noise_decay
from fan_mm.analysis.plots import png_size

TOOLS = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'analysis')


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'tool_{name}', osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp('photos')
    Image.fromarray(skimage.data.chelsea()).save(d / 'chelsea.jpg')
    Image.fromarray(skimage.data.coffee()).save(d / 'coffee.png')
    return d


def test_token_clustering_tool(photos, tmp_path):
    out = tmp_path / 'clusters'
    load_tool('token_clustering').main([
        'resnet18', 'none', str(photos / 'chelsea.jpg'), str(photos / 'coffee.png'), '--out', str(out),
        '--models', 'convnext_atto=none', '--blocks', '-2', '4', '--num-clusters', '3',
        '--crop-size', '112'])
    # 2 images x (image + 2 models x 2 blocks) panels of 2.2 in at 100 dpi, + title and note strips
    assert png_size(out / 'token_clustering.png') == (1100, 495)
    labels = np.load(out / 'token_clusters.npz')
    assert len(labels.files) == 2 * 2 * 2
    # each model sees the 112 px crop at its own input size (224): 7 x 7 tokens at stride 32, 14 x 14 at 16
    assert labels['chelsea|resnet18 (random init)|layer4.0'].shape == (7, 7)
    lab = labels['coffee|convnext_atto (random init)|stages.2.blocks.0']
    assert lab.shape == (14, 14) and set(np.unique(lab)) == {0, 1, 2}


def test_noise_decay_tool(photos, tmp_path):
    out = tmp_path / 'noise'
    load_tool('noise_decay').main([
        'vit_tiny_patch16_224', 'none', str(photos), '--out', str(out), '--models', 'resnet18',
        '--sigma', '0.05', '0.2', '--threshold', '0.05', '--crop-size', '96'])
    with open(out / 'noise_decay.csv') as f:
        rows = list(csv.DictReader(f))
    # (12 ViT blocks + 8 ResNet-18 blocks) x 2 images x 2 sigmas
    assert len(rows) == (12 + 8) * 2 * 2
    assert {r['image'] for r in rows} == {'chelsea', 'coffee'}
    assert all(int(r['n_significant']) >= 1 for r in rows)
    vit = [r for r in rows if r['model'].startswith('vit_tiny') and r['image'] == 'coffee']
    for block in range(12):
        p = {float(r['sigma']): float(r['perturbation']) for r in vit if int(r['block_index']) == block}
        assert 0 < p[0.05] < p[0.2]
    with open(out / 'noise_decay_summary.csv') as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == (12 + 8) * 2 and all(r['num_images'] == '2' for r in summary)
    spectra = np.load(out / 'eigenvalues.npz')
    ev = spectra['resnet18 (random init)|layer4.1']
    assert ev.shape == (2, 49) and np.allclose(ev[:, 0], 1)  # 224 px input / 32 = 7 x 7 tokens; top is 1
    # two models -> (a), (b) and the comparison (c), 4 x 3.2 in each + note strip
    assert png_size(out / 'noise_decay.png') == (1200, 350)


def test_perturbation_zero_without_noise_and_growing_with_it():
    loaded = build_model('vit_small_patch16_224', 'none', depth=4, embed_dim=48, num_heads=2, img_size=64)
    image = center_crop(skimage.data.astronaut(), 64)
    rows, spectra = measure_noise_decay(loaded, [image], ['astronaut'], sigmas=(0.0, 0.02, 0.1, 0.3))
    for block in range(4):
        p = [r['perturbation'] for r in sorted(rows, key=lambda r: r['sigma']) if r['block_index'] == block]
        assert p[0] == 0.0
        assert p[1] < p[2] < p[3]
    assert spectra['blocks.0'].shape == (1, 16)


def test_tools_report_bad_input(photos, tmp_path):
    tool = load_tool('noise_decay')
    with pytest.raises(FileNotFoundError, match='nothere.jpg'):
        tool.main(['resnet18', 'none', str(photos / 'nothere.jpg'), '--out', str(tmp_path)])
    with pytest.raises(ValueError, match='not_a_model'):
        tool.main(['resnet18', 'none', str(photos), '--out', str(tmp_path), '--models', 'not_a_model'])
    with pytest.raises(ValueError, match='out of range'):
        tool.main(['resnet18', 'none', str(photos), '--out', str(tmp_path), '--blocks', '40'])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA'):
            tool.main(['resnet18', 'none', str(photos), '--out', str(tmp_path), '--device', 'cuda'])


def test_one_default_threshold_for_significant_eigenvalues():
    """The library functions, the tool and docs/analysis.md count eigenvalues above the same threshold."""
    import inspect
    import re

    from fan_mm.analysis.noise_decay import run_noise_decay
    from fan_mm.analysis.spectral import DEFAULT_THRESHOLD, significant_eigenvalues
    for fn in (significant_eigenvalues, measure_noise_decay, run_noise_decay):
        assert inspect.signature(fn).parameters['threshold'].default == DEFAULT_THRESHOLD, fn.__name__
    tool = load_tool('noise_decay')
    assert tool.parse_args(['m', 'none', 'images', '--out', 'o']).threshold == DEFAULT_THRESHOLD
    docs = open(osp.join(TOOLS, '..', '..', 'docs', 'analysis.md')).read()
    documented = re.search(r'`--threshold` defaults to ([0-9.]+)', docs)
    assert documented and float(documented.group(1)) == DEFAULT_THRESHOLD
