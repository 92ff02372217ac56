"""The dist_* / slurm_* wrappers build the commands mmdet users expect. ``srun`` and ``python`` are
replaced by recorders on PATH (no cluster, no processes started); the real 2-process torchrun runs are
in test_dist_tools.py and tests/robustness (slow)."""
import os
import os.path as osp
import shutil
import subprocess

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')

pytestmark = pytest.mark.skipif(shutil.which('bash') is None, reason='needs bash')


def run_with_recorder(tmp_path, program, script, *args, **env):
    """Run tools/<script> with ``program`` (srun / python) replaced by a script that prints its argv."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / program
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "PYTHONPATH=$PYTHONPATH" "$@"\n')
    fake.chmod(0o755)
    full_env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}', PYTHONPATH='', **env)
    res = subprocess.run(['bash', osp.join(TOOLS, script), *args], capture_output=True, text=True, env=full_env)
    return res.returncode, res.stdout.splitlines(), res.stderr


def test_slurm_train_command(tmp_path):
    rc, argv, err = run_with_recorder(tmp_path, 'srun', 'slurm_train.sh', 'gpu', 'job', 'cfg.py', 'wd',
                                      '--amp', GPUS='16', SRUN_ARGS='--time=1:00:00 --exclusive')
    assert rc == 0, err
    assert argv[0] == f'PYTHONPATH={ROOT}'
    assert argv[1:] == ['-p', 'gpu', '--job-name=job', '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
                        '--cpus-per-task=5', '--kill-on-bad-exit=1', '--time=1:00:00', '--exclusive',
                        'python', '-u', osp.join(TOOLS, 'train.py'), 'cfg.py', '--work-dir=wd',
                        '--launcher=slurm', '--amp']


def test_slurm_test_command(tmp_path):
    rc, argv, err = run_with_recorder(tmp_path, 'srun', 'slurm_test.sh', 'gpu', 'job', 'cfg.py', 'ck.pth',
                                      '--out', 'r.pkl', GPUS='4', GPUS_PER_NODE='4')
    assert rc == 0, err
    assert argv[1:5] == ['-p', 'gpu', '--job-name=job', '--gres=gpu:4']
    assert argv[-8:] == ['python', '-u', osp.join(TOOLS, 'test.py'), 'cfg.py', 'ck.pth', '--launcher=slurm',
                         '--out', 'r.pkl']


@pytest.mark.parametrize('script, args, tool, positional', [
    ('dist_train.sh', ['cfg.py', '4', '--amp'], 'train.py', ['cfg.py']),
    ('dist_test.sh', ['cfg.py', 'ck.pth', '4', '--amp'], 'test.py', ['cfg.py', 'ck.pth']),
    ('dist_test_robustness.sh', ['cfg.py', 'ck.pth', '4', '--amp'], 'test_robustness.py', ['cfg.py', 'ck.pth']),
])
def test_dist_commands(tmp_path, script, args, tool, positional):
    rc, argv, err = run_with_recorder(tmp_path, 'python', script, *args, NNODES='2', NODE_RANK='1',
                                      MASTER_ADDR='10.0.0.1', PORT='29600')
    assert rc == 0, err
    assert argv == [f'PYTHONPATH={ROOT}', '-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
                    '--master_addr=10.0.0.1', '--nproc_per_node=4', '--master_port=29600',
                    osp.join(TOOLS, tool), *positional, '--launcher', 'pytorch', '--amp']


@pytest.mark.parametrize('script, args', [('dist_train.sh', ['cfg.py']), ('dist_test.sh', ['cfg.py', 'ck']),
                                          ('slurm_test.sh', ['p', 'j', 'cfg.py'])])
def test_missing_arguments_print_the_usage(tmp_path, script, args):
    rc, argv, err = run_with_recorder(tmp_path, 'python', script, *args)
    assert rc == 2 and argv == [] and err.startswith(f'usage: bash tools/{script} ')
