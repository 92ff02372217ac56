"""The install script's decisions, without rebuilding mmcv (that takes ~25 min)."""
import importlib.util
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='module')
def install():
    spec = importlib.util.spec_from_file_location(
        'fan_mm_install', osp.join(ROOT, 'scripts', 'install.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('torch_version,std', [
    ('2.1.2', 'c++17'), ('2.13.0+cpu', 'c++17'), ('2.14.0', 'c++20'),
    ('2.15.0+cu132', 'c++20'), ('2.16.0.dev20261101', 'c++20'), ('3.0.0', 'c++20')])
def test_cxx_standard_follows_torch(install, torch_version, std):
    assert install.required_cxx_std(torch_version) == std


SETUP_SNIPPET = '''
        if parse_version(torch.__version__) <= parse_version('1.12.1'):
            extra_compile_args['cxx'] += ['-std=c++14']
        else:
            extra_compile_args['cxx'] += ['-std=c++17']
        if is_windows:
            extra_compile_args['cxx'] += ['/std:c++17']
'''


def test_patch_switches_every_cxx17_flag(install):
    patched = install.patch_mmcv_setup(SETUP_SNIPPET, 'c++20')
    assert '-std=c++20' in patched and '/std:c++20' in patched
    assert 'c++17' not in patched
    assert '-std=c++14' in patched  # the old-torch branch is left alone


def test_patch_is_a_no_op_for_cxx17(install):
    assert install.patch_mmcv_setup(SETUP_SNIPPET, 'c++17') == SETUP_SNIPPET


def test_patch_refuses_an_unknown_setup_py(install):
    with pytest.raises(install.InstallError, match='c\\+\\+17'):
        install.patch_mmcv_setup('setup(name="mmcv")\n', 'c++20')


def test_cache_key_separates_every_build_input(install):
    base = install.cache_key('2.1.0', '2.15.0+cu132', 'cp311', 'cpu')
    assert base == 'mmcv2.1.0-torch2.15.0+cu132-cp311-cpu'
    others = {
        install.cache_key('2.2.0', '2.15.0+cu132', 'cp311', 'cpu'),
        install.cache_key('2.1.0', '2.14.1+cu132', 'cp311', 'cpu'),
        install.cache_key('2.1.0', '2.15.0+cu132', 'cp312', 'cpu'),
        install.cache_key('2.1.0', '2.15.0+cu132', 'cp311', 'cu132-arch9.0'),
    }
    assert base not in others and len(others) == 4


def test_build_flavour(install):
    assert install.build_flavour('13.2', False, '9.0') == 'cpu'
    assert install.build_flavour('13.2', True, '7.0 8.0;9.0+PTX') == 'cu132-arch7.0_8.0_9.0+PTX'
    assert install.build_flavour('12.1', True, None) == 'cu121-archdefault'
    with pytest.raises(install.InstallError, match='no CUDA support'):
        install.build_flavour(None, True, '9.0')


def test_constraints_pin_torch_without_local_label(install):
    text = install.constraints_text('2.15.0+cu132', '0.29.2+cu132')
    lines = text.splitlines()
    assert 'torch==2.15.0' in lines and 'torchvision==0.29.2' in lines
    assert 'mmcv==2.1.0' in lines and any(line.startswith('setuptools') and '<82' in line
                                          for line in lines)


def test_wheel_cache_round_trip(install, tmp_path):
    key = install.cache_key('2.1.0', '2.15.0', 'cp311', 'cpu')
    assert install.find_cached_wheel(str(tmp_path), key) is None
    built = tmp_path / 'build' / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'
    built.parent.mkdir()
    built.write_bytes(b'wheel bytes')
    stored = install.store_wheel(str(built), str(tmp_path / 'cache'), key)
    assert install.find_cached_wheel(str(tmp_path / 'cache'), key) == stored
    assert open(stored, 'rb').read() == b'wheel bytes'
    assert not [f for f in os.listdir(osp.dirname(stored)) if f.endswith('.partial')]


class _Recorder:
    """Stands in for pip / the build so the decision logic runs in milliseconds."""

    def __init__(self, install, monkeypatch, installed, checks):
        self.calls = []
        self.checks = list(checks)
        monkeypatch.setattr(install, 'installed_version',
                            lambda dist: installed if dist == 'mmcv' else None)
        monkeypatch.setattr(install, 'pip', lambda *a, **k: self.calls.append(('pip',) + a))
        monkeypatch.setattr(install, 'check_mmcv_ops',
                            lambda cuda: (self.checks.pop(0), 'nms failed'))

        def fake_build(info, flavour, workdir, jobs):
            path = osp.join(workdir, 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl')
            open(path, 'wb').write(b'fresh')
            self.calls.append(('build', flavour))
            return path
        monkeypatch.setattr(install, 'build_mmcv_wheel', fake_build)


def _args(install, tmp_path, *extra):
    """The namespace main() would pass, with the cache in a temporary folder."""
    return install.build_parser().parse_args(['--cache-dir', str(tmp_path / 'cache'), *extra])


INFO = dict(torch='2.15.0+cu132', torchvision='0.29.2', cuda='13.2', gpu=False,
            python_tag='cp311')


def test_working_install_is_kept(install, monkeypatch, tmp_path):
    rec = _Recorder(install, monkeypatch, installed='2.1.0', checks=[True])
    install.install_mmcv(_args(install, tmp_path), INFO, None)
    assert rec.calls == []


def test_broken_cached_wheel_is_dropped_and_rebuilt(install, monkeypatch, tmp_path):
    key = install.cache_key('2.1.0', INFO['torch'], 'cp311', 'cpu')
    stale = tmp_path / 'cache' / key / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b'stale')
    # not installed -> cached wheel installed -> its check fails -> build -> check passes
    rec = _Recorder(install, monkeypatch, installed=None, checks=[False, True])
    install.install_mmcv(_args(install, tmp_path), INFO, None)
    assert [c[0] for c in rec.calls] == ['pip', 'build', 'pip']
    assert rec.calls[1] == ('build', 'cpu')
    assert open(install.find_cached_wheel(str(tmp_path / 'cache'), key), 'rb').read() == b'fresh'


def test_failed_fresh_build_is_not_cached(install, monkeypatch, tmp_path):
    _Recorder(install, monkeypatch, installed=None, checks=[False])
    with pytest.raises(install.InstallError, match='ops check'):
        install.install_mmcv(_args(install, tmp_path), INFO, None)
    key = install.cache_key('2.1.0', INFO['torch'], 'cp311', 'cpu')
    assert install.find_cached_wheel(str(tmp_path / 'cache'), key) is None


def test_installed_mmcv_passes_the_real_ops_check(install):
    """The environment this suite runs in was set up by install.sh: its mmcv has ops."""
    ok, out = install.check_mmcv_ops(False)
    assert ok, out


def test_help_runs_without_any_dependency():
    res = subprocess.run([sys.executable, osp.join(ROOT, 'scripts', 'install.py'), '--help'],
                         capture_output=True, text=True)
    assert res.returncode == 0 and '--keep-torch' in res.stdout


def test_index_flavour(install):
    assert install.index_flavour('https://download.pytorch.org/whl/cu128') == 'cu128'
    assert install.index_flavour('https://download.pytorch.org/whl/cpu/') == 'cpu'
    assert install.index_flavour('https://mirror.example/simple') is None
    assert install.index_flavour(None) is None


@pytest.mark.parametrize('installed, index, needed', [
    (INFO, None, False),                                          # PyPI pair as pinned: keep
    (INFO, 'https://download.pytorch.org/whl/cu128', True),      # same version, other build: swap
    (dict(INFO, torch='2.15.0+cu128', torchvision='0.29.2+cu128'), 'https://download.pytorch.org/whl/cu128', False),
    (dict(INFO, torch='2.14.0+cu132'), None, True),              # other version
    (None, None, True),                                           # nothing importable
    (INFO, 'https://mirror.example/simple', False),               # index of unknown build: versions decide
])
def test_torch_install_reason(install, installed, index, needed):
    reason = install.torch_install_reason(installed, ('2.15.0', '0.29.2'), index)
    assert (reason is not None) == needed, reason


def test_torch_from_an_index_swaps_a_same_version_build(install, monkeypatch):
    calls = []
    infos = iter([INFO, dict(INFO, torch='2.15.0+cu128', torchvision='0.29.2+cu128')])
    monkeypatch.setattr(install, 'torch_info', lambda: next(infos))
    monkeypatch.setattr(install, 'pip', lambda *a, **k: calls.append(a))
    url = 'https://download.pytorch.org/whl/cu128'
    args = install.build_parser().parse_args(['--torch-index-url', url])
    assert install.install_torch(args)['torch'] == '2.15.0+cu128'
    assert calls == [('--index-url', url, '--force-reinstall', '--no-deps', 'torch==2.15.0', 'torchvision==0.29.2'),
                     ('--index-url', url, 'torch==2.15.0', 'torchvision==0.29.2')]


def test_keep_torch_and_index_exclude_each_other():
    res = subprocess.run([sys.executable, osp.join(ROOT, 'scripts', 'install.py'), '--keep-torch',
                          '--torch-index-url', 'https://download.pytorch.org/whl/cu128'],
                         capture_output=True, text=True)
    assert res.returncode == 2 and 'exclude each other' in res.stderr


# ---------------------------------------------------------------------- the pins (requirements/)
def test_every_pin_lives_in_requirements_files(install):
    """One source of truth: install.py reads requirements/*.txt; torch / torchvision, the OpenMMLab
    stack and the test toolchain are pinned exactly (a machine that caps pip below the pinned torch
    lifts the cap only for a release named with == or >= in a requirements file)."""
    pins = install.PINS
    for name in ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmdet', 'mmsegmentation', 'timm', 'pytest',
                 'numpy', 'opencv-python', 'scikit-image', 'numba', 'imagecorruptions'):
        assert name in pins, name
    runtime = open(osp.join(ROOT, 'requirements', 'runtime.txt')).read()
    assert f'torch=={pins["torch"]}' in runtime and f'torchvision=={pins["torchvision"]}' in runtime
    # no version is written into the script itself
    assert not re.search(r"==\d", open(osp.join(ROOT, 'scripts', 'install.py')).read())
    # everything pip installs comes from the files
    assert set(install.stack_requirements()) >= {f'{n}=={v}' for n, v in pins.items() if n != 'mmcv'}


def test_installed_versions_match_the_pins(install):
    """The environment the suite runs in was made by install.sh from these files."""
    import importlib.metadata as metadata
    wrong = {}
    for name, version in install.PINS.items():
        have = metadata.version(name).split('+')[0]
        if have != version:
            wrong[name] = (have, version)
    assert not wrong, f'installed vs pinned: {wrong}'


def test_parse_requirements(install):
    specs = install.parse_requirements('# c\ntorch==2.15.0  # why\n\n-r other.txt\nsetuptools>=65,<82\nPillow==13.0.0\n')
    assert specs == {'torch': 'torch==2.15.0', 'setuptools': 'setuptools>=65,<82', 'pillow': 'pillow==13.0.0'}
    with pytest.raises(install.InstallError, match='cannot read requirement'):
        install.parse_requirements('git+https://example.invalid/x.git\n', 'x.txt')
    with pytest.raises(install.InstallError, match='must be pinned with =='):
        install.pinned_version({'torch': 'torch>=2'}, 'torch')


def test_one_minimum_python_everywhere(install):
    """README, setup.py and install.py state the same minimum, and it is what the pinned torch needs."""
    import importlib.metadata as metadata
    want = '.'.join(map(str, install.MIN_PYTHON))
    assert f"python_requires='>={want}'" in open(osp.join(ROOT, 'setup.py')).read()
    assert f'Python {want}+' in open(osp.join(ROOT, 'README.md')).read()
    assert metadata.metadata('torch')['Requires-Python'].replace(' ', '') == f'>={want}'
