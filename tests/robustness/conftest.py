"""Tiny datasets for the robustness tests (made once per session in a temp dir).

Images are small (Cityscapes 128x64, COCO 128x96) and the corruptions cheap ones, so the
whole folder runs in a few minutes on 2 CPU cores.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest

from fan_mm.datasets.toy import make_toy_cityscapes, make_toy_coco

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(REPO, 'tests', 'data', 'robustness')  # test configs and the test-only digest metric
SEG_CFG = osp.join(DATA, 'seg_fcn_tiny.py')
DET_CFG = osp.join(DATA, 'det_maskrcnn_tiny.py')
if DATA not in sys.path:
    sys.path.insert(0, DATA)
CITY_ARGS = dict(num_train=2, num_val=4, size=(128, 64), seed=3)
COCO_ARGS = dict(num_train=2, num_val=4, size=(128, 96), seed=3)


@pytest.fixture(scope='session')
def toy_city(tmp_path_factory):
    return make_toy_cityscapes(str(tmp_path_factory.mktemp('toy') / 'cityscapes'), **CITY_ARGS).root


@pytest.fixture(scope='session')
def toy_coco(tmp_path_factory):
    return make_toy_coco(str(tmp_path_factory.mktemp('toy') / 'coco'), **COCO_ARGS).root


def run_tool(tool, *args, env=None, timeout=600, **kwargs):
    """Run ``tools/<tool>`` in a fresh interpreter; returns the CompletedProcess."""
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, DATA, os.environ.get('PYTHONPATH', '')]),
                    PYTHONWARNINGS='ignore')
    full_env.update(env or {})
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', tool), *map(str, args)], env=full_env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def tree(root, skip_meta=True):
    """{relative path: bytes} of every file under ``root`` (journal and settings excluded)."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if skip_meta:
            dirnames[:] = [d for d in dirnames if d != '.fan_mm']
        for name in filenames:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                files[osp.relpath(path, root)] = f.read()
    return files


def make_checkpoint(config, path):
    """Save a seeded, randomly initialised model of ``config`` as an mmengine checkpoint."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    registry = __import__(f'{cfg.default_scope}.registry', fromlist=['MODELS']).MODELS
    __import__(f'{cfg.default_scope}.models')
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    model = registry.build(cfg.model)
    model.init_weights()
    torch.random.set_rng_state(state)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


def call_tool(tool, *args):
    """Run ``tools/<tool>``'s ``main(argv)`` in this process (no interpreter start-up);
    returns (exit status, stdout, stderr)."""
    import contextlib
    import importlib.util
    import io
    spec = importlib.util.spec_from_file_location(f'_tool_{osp.splitext(tool)[0]}', osp.join(REPO, 'tools', tool))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = module.main([str(a) for a in args])
        except SystemExit as e:
            status = e.code
    return status or 0, out.getvalue(), err.getvalue()


class CountRuns:
    """Counts the test runs (``Runner.test`` calls) of an evaluation."""

    def __init__(self, monkeypatch):
        from mmengine.runner import Runner
        self.n, original = 0, Runner.test

        def counted(runner):
            self.n += 1
            return original(runner)
        monkeypatch.setattr(Runner, 'test', counted)
