#!/usr/bin/env python3
"""Install fan_mm and its pinned OpenMMLab stack into the active Python environment.

Used by ``install.sh`` (README), ``.ci/run`` and ``docker/Dockerfile``. Standard library
only, because it runs before anything else is installed.

Why a script and not ``pip install -r requirements.txt``:

* mmdet 3.3.0 and mmseg 1.2.2 assert ``mmcv < 2.2.0``, and mmcv 2.1.0 exists on PyPI only
  as an sdist. Built the default way it silently comes out *without* its compiled ops
  (pip's build isolation hides torch from its setup.py; setuptools >= 82 has no
  ``pkg_resources``), and ``import mmdet.models`` then fails. We build it with
  ``--no-build-isolation``, ``MMCV_WITH_OPS=1`` and ``setuptools<82``, and against torch >= 2.14
  with ``-std=c++20`` (torch's headers need it; mmcv's setup.py asks for C++17).
* The build takes ~25 minutes on 2 CPU cores, so the wheel is cached, keyed by the mmcv,
  torch (with its CUDA flavour) and Python versions and the CUDA architectures; a cached
  wheel is only trusted after ``mmcv.ops.nms`` has run on a tensor.
* pip must never swap the torch we pinned for another build while resolving the rest, so
  everything after torch is installed under a constraints file.

The versions are not written here: every pin lives in ``requirements/*.txt`` (build, runtime,
mminstall, tests), in the layout mmdet and mmseg use, and this script reads them.
"""
import argparse
import hashlib
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
REQUIREMENTS = osp.join(REPO, 'requirements')
# Installed under the constraints file in this order: build tools first (mmcv is built without build
# isolation), then the runtime and OpenMMLab packages (mmcv itself aside), then the test toolchain.
MIN_PYTHON = (3, 11)  # torch 2.15 (requirements/runtime.txt) requires Python >= 3.11
REQUIREMENT_FILES = ('build.txt', 'runtime.txt', 'mminstall.txt', 'tests.txt')
# Always installed with the OpenMMLab stack: mmcv's own runtime needs, so that the mmcv wheel can go in
# with --no-deps.
MMCV_RUNTIME_DEPS = ['addict', 'yapf', 'pyyaml']
MMCV_OPS_CHECK = r'''
import torch
from mmcv.ops import nms, roi_align
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]])
scores = torch.tensor([0.9, 0.8, 0.7])
dets, keep = nms(boxes, scores, iou_threshold=0.5)
assert keep.tolist() == [0, 2], keep
feat = torch.arange(16.).view(1, 1, 4, 4)
out = roi_align(feat, torch.tensor([[0., 0., 0., 3., 3.]]), (2, 2), 1.0, 2, 'avg', True)
assert out.shape == (1, 1, 2, 2), out.shape
if torch.cuda.is_available() and {check_cuda}:
    dets, keep = nms(boxes.cuda(), scores.cuda(), iou_threshold=0.5)
    assert keep.tolist() == [0, 2], keep
print('mmcv ops OK')
'''


def log(msg):
    print(f'[fan_mm install] {msg}', flush=True)


class InstallError(RuntimeError):
    pass


# --------------------------------------------------------------------------- pure logic
def parse_requirements(text, source='requirements'):
    """``{name: spec}`` from a requirements file's text, e.g. ``{'torch': 'torch==X.Y.Z'}``.

    Comments, blank lines and ``-r`` includes are skipped (the files are read one by one); a line that is
    not a plain ``name<op>version`` requirement is refused, since this script must stay dependency-free.
    """
    out = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split('#', 1)[0].strip()
        if not line or line.startswith('-r '):
            continue
        m = re.fullmatch(r'([A-Za-z0-9][A-Za-z0-9._-]*)\s*((?:[<>=!~]=?\s*[\w.*+]+\s*,?\s*)+)', line)
        if not m:
            raise InstallError(f'{source}:{number}: cannot read requirement {raw.strip()!r}')
        name = m.group(1).lower().replace('_', '-')
        out[name] = name + re.sub(r'\s+', '', m.group(2))
    return out


def read_requirements(name, folder=REQUIREMENTS):
    path = osp.join(folder, name)
    if not osp.isfile(path):
        raise InstallError(f'requirements file not found: {path}')
    with open(path) as f:
        return parse_requirements(f.read(), path)


def pinned_version(specs, name):
    """The exact version ``name==X`` pins in ``specs``, or an error naming the package."""
    spec = specs.get(name)
    m = re.fullmatch(re.escape(name) + r'==([\w.+]+)', spec or '')
    if not m:
        raise InstallError(f'{name} must be pinned with == in requirements/ (found {spec!r})')
    return m.group(1)


def load_pins(folder=REQUIREMENTS):
    """Every requirement of the project, by file: ``{'runtime.txt': {...}, ...}``."""
    return {name: read_requirements(name, folder) for name in REQUIREMENT_FILES}


def parse_version(text):
    """'2.15.0+cu130' -> (2, 15, 0). Tolerates rc/dev suffixes."""
    nums = re.findall(r'\d+', text.split('+')[0])
    return tuple(int(n) for n in nums[:3]) + (0,) * (3 - len(nums[:3]))


def required_cxx_std(torch_version):
    """C++ standard mmcv must be compiled with for this torch (torch >= 2.14 headers need C++20)."""
    return 'c++20' if parse_version(torch_version) >= (2, 14, 0) else 'c++17'


def patch_mmcv_setup(text, cxx_std):
    """Return mmcv's setup.py text asking for ``cxx_std``; fail loudly if nothing matched.

    mmcv 2.1.0 hard-codes ``-std=c++17`` (and ``/std:c++17`` for MSVC) for torch > 1.12.
    """
    if cxx_std == 'c++17':
        return text
    patched, count = re.subn(r'([-/]std[=:])c\+\+17', r'\g<1>' + cxx_std, text)
    if count == 0:
        raise InstallError(
            'could not find "-std=c++17" in mmcv\'s setup.py to switch it to '
            f'{cxx_std}; the sdist layout changed, so the build cannot be patched')
    return patched


def build_flavour(torch_cuda_version, build_cuda, cuda_arch_list):
    """'cpu', or e.g. 'cu130-arch9.0' when the CUDA ops are built (GPU present or FORCE_CUDA=1)."""
    if not build_cuda:
        return 'cpu'
    if torch_cuda_version is None:
        raise InstallError('FORCE_CUDA=1 / a GPU was requested, but the installed torch '
                           'has no CUDA support (torch.version.cuda is None)')
    cuda = 'cu' + torch_cuda_version.replace('.', '')
    archs = re.sub(r'[ ;]+', '_', (cuda_arch_list or 'default').strip())
    return f'{cuda}-arch{archs}'


def cache_key(mmcv_version, torch_version, python_tag, flavour):
    """Directory name of a cached mmcv wheel: one per (mmcv, torch build, Python, ops flavour)."""
    raw = f'mmcv{mmcv_version}-torch{torch_version}-{python_tag}-{flavour}'
    return re.sub(r'[^A-Za-z0-9._+-]', '_', raw)


def find_cached_wheel(cache_dir, key):
    folder = osp.join(cache_dir, key)
    if not osp.isdir(folder):
        return None
    wheels = sorted(f for f in os.listdir(folder) if f.endswith('.whl'))
    return osp.join(folder, wheels[0]) if wheels else None


def store_wheel(wheel_path, cache_dir, key):
    """Move a freshly built wheel into the cache atomically (no half-copied wheel is ever seen)."""
    folder = osp.join(cache_dir, key)
    os.makedirs(folder, exist_ok=True)
    final = osp.join(folder, osp.basename(wheel_path))
    tmp = final + '.partial'
    shutil.copyfile(wheel_path, tmp)
    os.replace(tmp, final)
    return final


def exact_pins(requirements):
    """``{name: version}`` of every ``==`` pin in the files of ``load_pins()``."""
    out = {}
    for specs in requirements.values():
        for name, spec in specs.items():
            if spec.startswith(name + '=='):
                out[name] = spec[len(name) + 2:]
    return out


def constraints_text(torch_version, torchvision_version, numpy_version=None):
    """Pins that keep pip from replacing torch while it resolves the rest.

    Local labels ('+cu132') are dropped: the installed distribution may not carry them,
    and ``==X.Y.Z`` already matches 'X.Y.Z+cu132' (PEP 440).
    """
    torch_version, torchvision_version = (v.split('+')[0] for v in (torch_version,
                                                                     torchvision_version))
    lines = [f'torch=={torch_version}', f'torchvision=={torchvision_version}',
             f'mmcv=={PINS["mmcv"]}', REQUIREMENTS_BY_FILE['build.txt']['setuptools']]
    if numpy_version:
        lines.append(f'numpy=={numpy_version}')
    return '\n'.join(lines) + '\n'


def stack_requirements():
    """What pip installs under the constraints file: the runtime, OpenMMLab (except mmcv) and test pins."""
    specs = []
    for name in REQUIREMENT_FILES:
        specs += [spec for pkg, spec in REQUIREMENTS_BY_FILE[name].items() if pkg != 'mmcv']
    return specs + MMCV_RUNTIME_DEPS


# The pins, read once from requirements/ (the one source of truth; see requirements.txt).
REQUIREMENTS_BY_FILE = load_pins()
PINS = exact_pins(REQUIREMENTS_BY_FILE)
for _name in ('torch', 'torchvision', 'mmcv'):
    pinned_version(REQUIREMENTS_BY_FILE['runtime.txt' if _name != 'mmcv' else 'mminstall.txt'], _name)


# --------------------------------------------------------------------------- side effects
def run(cmd, env=None, cwd=None, capture=False):
    log('$ ' + ' '.join(cmd))
    res = subprocess.run(cmd, env=env, cwd=cwd, text=True,
                         stdout=subprocess.PIPE if capture else None,
                         stderr=subprocess.STDOUT if capture else None)
    if res.returncode != 0:
        if capture:
            print(res.stdout[-5000:])
        raise InstallError(f'command failed ({res.returncode}): {" ".join(cmd)}')
    return res.stdout if capture else ''


def pip(*args, constraints=None):
    cmd = [sys.executable, '-m', 'pip', 'install', '--disable-pip-version-check']
    if constraints:
        cmd += ['-c', constraints]
    run(cmd + list(args))


def python_eval(code):
    res = subprocess.run([sys.executable, '-c', code], text=True, capture_output=True)
    return res.returncode, (res.stdout + res.stderr).strip()


def installed_version(dist):
    rc, out = python_eval(
        f'import importlib.metadata as m; print(m.version({dist!r}))')
    return out.splitlines()[-1] if rc == 0 else None


def torch_info():
    rc, out = python_eval(
        'import torch, torchvision, sys; '
        'print(torch.__version__, torchvision.__version__, torch.version.cuda, '
        'int(torch.cuda.is_available()), f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    if rc != 0:
        return None
    torch_v, tv_v, cuda, has_gpu, tag = out.splitlines()[-1].split()
    return dict(torch=torch_v, torchvision=tv_v, cuda=None if cuda == 'None' else cuda,
                gpu=has_gpu == '1', python_tag=tag)


def check_mmcv_ops(check_cuda):
    rc, out = python_eval(MMCV_OPS_CHECK.format(check_cuda=check_cuda))
    return rc == 0, out


def index_flavour(index_url):
    """The build a PyTorch wheel index serves, from its last path part ('cu128', 'cpu'), or None
    for an index that does not say (PyPI, a mirror)."""
    if not index_url:
        return None
    tail = index_url.rstrip('/').rsplit('/', 1)[-1]
    return tail if re.fullmatch(r'cu\d+|cpu|rocm[\d.]+|xpu', tail) else None


def torch_install_reason(info, want, index_url=None):
    """Why the pinned torch / torchvision must be installed, or None if the installed pair will do.

    ``want`` is (torch, torchvision) without local labels. With a PyTorch index of a known build
    ('.../whl/cu128'), an installed pair of another build (e.g. PyPI's '+cu132') is replaced too.
    """
    if info is None:
        return 'torch / torchvision are not installed (or do not import together)'
    have = (info['torch'].split('+')[0], info['torchvision'].split('+')[0])
    if have != want:
        return (f'installed torch {info["torch"]} / torchvision {info["torchvision"]}, '
                f'pinned {want[0]} / {want[1]}')
    flavour = index_flavour(index_url)
    label = info['torch'].partition('+')[2] or None
    if flavour and label != flavour:
        return f'installed torch {info["torch"]} is not the {flavour} build that {index_url} serves'
    return None


def install_torch(args):
    info = torch_info()
    if args.keep_torch:
        if info is None:
            raise InstallError('--keep-torch given, but torch/torchvision do not import')
        log(f'keeping the installed torch {info["torch"]} / torchvision {info["torchvision"]}')
        return info
    want = (PINS['torch'], PINS['torchvision'])
    reason = torch_install_reason(info, want, args.torch_index_url)
    if reason is None:
        log(f'torch {info["torch"]} / torchvision {info["torchvision"]} already installed')
        return info
    where = args.torch_index_url or 'PyPI (CUDA builds; they run on CPU too)'
    log(f'{reason}: installing torch {want[0]} and torchvision {want[1]} from {where}')
    # ``--no-index`` would pick the local CPU-only torch file that cannot pair with
    # torchvision; exact pins keep pip on the PyPI builds (or on the given index).
    specs = [f'torch=={want[0]}', f'torchvision=={want[1]}']
    index = ['--index-url', args.torch_index_url] if args.torch_index_url else []
    if info and args.torch_index_url:
        # The same version of another build counts as installed for pip: swap the two packages.
        pip(*index, '--force-reinstall', '--no-deps', *specs)
    pip(*index, *specs)  # (and the dependencies of that build)
    info = torch_info()
    if info is None:
        raise InstallError('torch/torchvision were installed but do not import together')
    return info


def build_mmcv_wheel(info, flavour, workdir, jobs):
    cxx = required_cxx_std(info['torch'])
    log(f'building mmcv {PINS["mmcv"]} with ops against torch {info["torch"]} '
        f'({flavour}, -std={cxx}, {jobs} jobs); about 25 min on 2 CPU cores, '
        'a few minutes on 16')
    src_dir = osp.join(workdir, 'sdist')
    run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:',
         '--no-build-isolation', '-d', src_dir, f'mmcv=={PINS["mmcv"]}'])
    archives = [f for f in os.listdir(src_dir) if f.endswith('.tar.gz')]
    if not archives:
        raise InstallError(f'pip download gave no mmcv sdist in {src_dir}')
    with tarfile.open(osp.join(src_dir, archives[0])) as tar:
        tar.extractall(workdir, filter='data')
    tree = osp.join(workdir, archives[0][:-len('.tar.gz')])
    setup_py = osp.join(tree, 'setup.py')
    with open(setup_py) as f:
        text = f.read()
    with open(setup_py, 'w') as f:
        f.write(patch_mmcv_setup(text, cxx))
    env = dict(os.environ, MMCV_WITH_OPS='1', MAX_JOBS=str(jobs))
    if flavour != 'cpu':
        env['FORCE_CUDA'] = '1'
    out_dir = osp.join(workdir, 'wheel')
    start = time.time()
    run([sys.executable, '-m', 'pip', 'wheel', '--no-build-isolation', '--no-deps',
         '-w', out_dir, tree], env=env)
    log(f'mmcv build took {(time.time() - start) / 60:.1f} min')
    wheels = [f for f in os.listdir(out_dir) if f.startswith('mmcv-') and f.endswith('.whl')]
    if not wheels:
        raise InstallError('mmcv build produced no wheel')
    return osp.join(out_dir, wheels[0])


def install_mmcv(args, info, constraints):
    force_cuda = os.environ.get('FORCE_CUDA', '0') == '1' or info['gpu']
    flavour = build_flavour(info['cuda'], force_cuda, os.environ.get('TORCH_CUDA_ARCH_LIST'))
    key = cache_key(PINS['mmcv'], info['torch'], info['python_tag'], flavour)
    check_cuda = flavour != 'cpu'
    if not args.rebuild_mmcv and installed_version('mmcv') == PINS['mmcv']:
        ok, out = check_mmcv_ops(check_cuda)
        if ok:
            log(f'mmcv {PINS["mmcv"]} with working ops already installed')
            return
        log('installed mmcv fails its ops check; reinstalling:\n' + out[-800:])
    wheel = None if args.rebuild_mmcv else find_cached_wheel(args.cache_dir, key)
    if wheel:
        log(f'using cached mmcv wheel {wheel}')
        pip('--force-reinstall', '--no-deps', wheel)
        ok, out = check_mmcv_ops(check_cuda)
        if ok:
            return
        log('cached mmcv wheel failed the ops check, rebuilding:\n' + out[-800:])
        shutil.rmtree(osp.dirname(wheel), ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix='fan_mm_mmcv_') as workdir:
        built = build_mmcv_wheel(info, flavour, workdir, args.jobs)
        pip('--force-reinstall', '--no-deps', built)
        ok, out = check_mmcv_ops(check_cuda)
        if not ok:
            raise InstallError('freshly built mmcv fails its ops check:\n' + out[-2000:])
        cached = store_wheel(built, args.cache_dir, key)
        log(f'cached the mmcv wheel as {cached}')


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--keep-torch', action='store_true',
                        help='use the torch/torchvision already installed (e.g. a CUDA '
                        'Docker base image) instead of the pinned PyPI builds')
    parser.add_argument('--torch-index-url', metavar='URL',
                        help='install the pinned torch / torchvision from this PyTorch wheel index '
                        '(e.g. https://download.pytorch.org/whl/cu128 for older drivers or V100s) '
                        'instead of PyPI')
    parser.add_argument('--rebuild-mmcv', action='store_true',
                        help='ignore the cached/installed mmcv and build it again')
    parser.add_argument('--cache-dir', default=os.environ.get(
        'FAN_MM_CACHE', osp.join(osp.expanduser('~'), '.cache', 'fan_mm', 'wheels')),
        help='where built mmcv wheels are kept (env FAN_MM_CACHE)')
    parser.add_argument('--jobs', type=int, default=int(os.environ.get(
        'MAX_JOBS', os.cpu_count() or 2)), help='parallel compile jobs for mmcv')
    parser.add_argument('--no-project', action='store_true',
                        help='install the dependencies only, not fan_mm itself')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.keep_torch and args.torch_index_url:
        parser.error('--keep-torch and --torch-index-url exclude each other')

    repo = REPO
    start = time.time()
    try:
        log(f'Python {sys.version.split()[0]} at {sys.executable}')
        if sys.version_info < MIN_PYTHON:
            raise InstallError(f'Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]} is required (torch '
                               f'{PINS["torch"]} needs it), this is {sys.version.split()[0]}')
        pip(*REQUIREMENTS_BY_FILE['build.txt'].values())
        info = install_torch(args)
        numpy_version = installed_version('numpy')
        with tempfile.NamedTemporaryFile('w', suffix='.txt', delete=False) as f:
            f.write(constraints_text(info['torch'], info['torchvision'], None))
            constraints = f.name
        try:
            # mmcv's own runtime needs (mmengine, addict, yapf, opencv...) first, so the
            # mmcv wheel can go in with --no-deps.
            log('installing the OpenMMLab stack and the other runtime dependencies')
            pip(*stack_requirements(), constraints=constraints)
            install_mmcv(args, info, constraints)
            if not args.no_project:
                log('installing fan_mm (editable)')
                pip('--no-deps', '--no-build-isolation', '-e', repo)
        finally:
            os.unlink(constraints)
        rc, out = python_eval(
            'import mmdet.models, mmseg.models, mmcv, mmengine, mmdet, mmseg, timm, torch;'
            'print("torch", torch.__version__, "| mmcv", mmcv.__version__, "| mmengine",'
            ' mmengine.__version__, "| mmdet", mmdet.__version__, "| mmseg", mmseg.__version__,'
            ' "| timm", timm.__version__)')
        if rc != 0:
            raise InstallError('final import check failed:\n' + out[-3000:])
        log(next((line for line in out.splitlines() if line.startswith('torch ')), out))
        if numpy_version and installed_version('numpy') != numpy_version:
            log(f'note: numpy changed from {numpy_version} to {installed_version("numpy")}')
    except InstallError as err:
        log(f'FAILED: {err}')
        return 1
    log(f'done in {(time.time() - start) / 60:.1f} min')
    return 0


if __name__ == '__main__':
    sys.exit(main())
