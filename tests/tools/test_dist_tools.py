"""tools/dist_train.sh and tools/dist_test.sh with 2 CPU processes (torchrun, gloo) on the toy COCO data:
training writes a checkpoint, and the 2-process test run reports the same metrics as 1 process."""
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import time

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET_CONFIG = osp.join(ROOT, 'configs', 'toy', 'maskrcnn_fan_t_hybrid_toy_coco.py')
GLOO = 'env_cfg.dist_cfg.backend=gloo'

pytestmark = pytest.mark.skipif(shutil.which('bash') is None, reason='needs bash')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def run(cmd, cwd, **env):
    # the scripts call `python`: make it this interpreter
    # PYTHONFAULTHANDLER: a crashing rank prints where each of its threads was
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1', PORT=free_port(), PYTHONFAULTHANDLER='1',
               PATH=osp.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''), **env)
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    # the logs (stdout) say how far the run got, stderr how it ended
    assert res.returncode == 0, f'stdout:\n{res.stdout[-2500:]}\nstderr:\n{res.stderr[-5000:]}'
    return res.stdout + res.stderr


def metrics_json(work_dir):
    found = [osp.join(d, f) for d, _, fs in os.walk(work_dir) for f in fs if f.endswith('.json')]
    assert len(found) == 1, found
    return json.load(open(found[0]))


@pytest.mark.slow  # three tool runs (~3 min on 2 busy cores); the only check of the launch scripts
def test_two_process_train_and_test_match_one_process(tmp_path):
    from fan_mm.datasets import make_toy_dataset
    make_toy_dataset('coco', str(tmp_path / 'data' / 'toy_coco'), num_train=4, num_val=4)
    work = tmp_path / 'work_dist'
    out = run(['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), DET_CONFIG, '2', '--work-dir', str(work),
               '--cfg-options', GLOO, 'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
               'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1', 'randomness.seed=0'],
              cwd=tmp_path)
    assert 'Distributed training: True' in out and 'GPU number: 2' in out  # mmengine's world size line
    assert (work / 'iter_2.pth').is_file()
    ckpt = str(work / 'iter_2.pth')
    run(['bash', osp.join(ROOT, 'tools', 'dist_test.sh'), DET_CONFIG, ckpt, '2', '--work-dir',
         str(tmp_path / 'test2'), '--cfg-options', GLOO], cwd=tmp_path)
    run([sys.executable, osp.join(ROOT, 'tools', 'test.py'), DET_CONFIG, ckpt, '--work-dir',
         str(tmp_path / 'test1')], cwd=tmp_path)
    two, one = metrics_json(tmp_path / 'test2'), metrics_json(tmp_path / 'test1')
    assert 'coco/bbox_mAP' in one
    for k, v in one.items():
        if k.startswith('coco/'):
            assert two[k] == pytest.approx(v, abs=1e-3), k


def _gloo_threads(wait_s=0.):
    """Names of this process's gloo threads; with wait_s, wait up to that long for them to be gone (a joined
    thread can stay listed in /proc for a moment, and vanish between listing and reading)."""
    deadline = time.monotonic() + wait_s
    while True:
        names = []
        for task in os.listdir('/proc/self/task'):
            try:
                with open(f'/proc/self/task/{task}/comm') as f:
                    names.append(f.read().strip())
            except OSError:  # exited since the listing
                pass
        names = [n for n in names if 'gloo' in n]
        if not names or time.monotonic() >= deadline:
            return names
        time.sleep(0.05)


def test_release_process_group(tmp_path):
    """The tools end the process group a distributed run made (and do nothing without one), and with it
    gloo's threads, even while a finished run that used it is still waiting in a reference cycle."""
    import torch.distributed as dist
    import torch.nn as nn
    from torch.nn.parallel import DistributedDataParallel
    from fan_mm.engine.runner import release_process_group
    release_process_group()  # none: nothing to do, no error
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    assert dist.is_initialized()
    finished_run = {'model': DistributedDataParallel(nn.Linear(2, 2))}  # DDP's reducer holds the group
    finished_run['self'] = finished_run  # as mmengine's runner and its hooks do
    del finished_run
    has_proc = osp.isdir('/proc/self/task')
    if has_proc:
        assert _gloo_threads()
    release_process_group()
    assert not dist.is_initialized()
    if has_proc:
        assert not _gloo_threads(wait_s=5)


@pytest.mark.parametrize('main_process', [True, False])
def test_only_the_main_process_writes_the_test_metrics_json(monkeypatch, main_process):
    """mmengine's LoggerHook writes the test metrics JSON on every rank into one file; the tools keep only
    the main process's write (two ranks at once left an unreadable file)."""
    import types

    import mmengine.dist
    from mmengine.hooks import LoggerHook
    from fan_mm.engine.runner import write_test_metrics_on_main_process_only
    monkeypatch.setattr(mmengine.dist, 'is_main_process', lambda: main_process)
    logger_hook = LoggerHook()
    runner = types.SimpleNamespace(hooks=[object(), logger_hook])
    write_test_metrics_on_main_process_only(runner)
    if main_process:
        assert 'after_test_epoch' not in vars(logger_hook)  # mmengine's method, untouched
    else:
        logger_hook.after_test_epoch(types.SimpleNamespace())  # would fail reading the runner's log dir
