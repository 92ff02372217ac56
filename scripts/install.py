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

# Pinned, tested versions. torch/torchvision come from PyPI (CUDA builds that also run on
# CPU); timm needs torchvision, and the PyPI torchvision only pairs with the PyPI torch.
PINS = {
    'torch': '2.15.0',
    'torchvision': '0.29.2',
    'mmcv': '2.1.0',
    'mmengine': '0.10.7',
    'mmdet': '3.3.0',
    'mmsegmentation': '1.2.2',
    'timm': '1.0.31',
    'imagecorruptions': '1.1.2',
    'numba': '0.68.1',
}
# mmengine 0.10.7 resolves ``mmdet::``/``mmseg::`` config bases with pkg_resources, which
# setuptools 82 removed; mmcv's setup.py imports it too.
SETUPTOOLS_SPEC = 'setuptools>=65,<82'
BUILD_TOOLS = [SETUPTOOLS_SPEC, 'wheel', 'ninja', 'psutil', 'packaging']
# Resolved by pip under the constraints file (versions not critical, or pinned above).
RUNTIME_PACKAGES = [
    'mmengine=={mmengine}', 'mmdet=={mmdet}', 'mmsegmentation=={mmsegmentation}',
    'timm=={timm}', 'imagecorruptions=={imagecorruptions}', 'numba=={numba}',
    'pycocotools', 'ftfy', 'regex', 'opencv-python', 'scikit-image', 'scipy', 'matplotlib',
    'tqdm', 'Pillow', 'pytest', 'scikit-learn',
]
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


def constraints_text(torch_version, torchvision_version, numpy_version=None):
    """Pins that keep pip from replacing torch while it resolves the rest.

    Local labels ('+cu132') are dropped: the installed distribution may not carry them,
    and ``==2.15.0`` already matches '2.15.0+cu132' (PEP 440).
    """
    torch_version, torchvision_version = (v.split('+')[0] for v in (torch_version,
                                                                     torchvision_version))
    lines = [f'torch=={torch_version}', f'torchvision=={torchvision_version}',
             f'mmcv=={PINS["mmcv"]}', SETUPTOOLS_SPEC]
    if numpy_version:
        lines.append(f'numpy=={numpy_version}')
    return '\n'.join(lines) + '\n'


def runtime_requirements():
    return [p.format(**PINS) for p in RUNTIME_PACKAGES]


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

    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    start = time.time()
    try:
        log(f'Python {sys.version.split()[0]} at {sys.executable}')
        if sys.version_info < (3, 9):
            raise InstallError('Python >= 3.9 is required (tested with 3.11)')
        pip(SETUPTOOLS_SPEC, *BUILD_TOOLS[1:])
        info = install_torch(args)
        numpy_version = installed_version('numpy')
        with tempfile.NamedTemporaryFile('w', suffix='.txt', delete=False) as f:
            f.write(constraints_text(info['torch'], info['torchvision'], None))
            constraints = f.name
        try:
            # mmcv's own runtime needs (mmengine, addict, yapf, opencv...) first, so the
            # mmcv wheel can go in with --no-deps.
            log('installing the OpenMMLab stack and the other runtime dependencies')
            pip(*runtime_requirements(), 'addict', 'yapf', 'pyyaml', 'packaging',
                constraints=constraints)
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
