"""What a result was measured with: the one environment record of fan_mm.

Benchmarks, the from-scratch comparison and ``robustness.json`` all store this record next to
their numbers, so that a figure can be traced to its software versions, device and thread
settings. Importing this module loads nothing heavy; each package is looked up only when it is
already installed, and torch only when ``device`` is given or ``packages`` names it.
"""
import importlib
import os
import platform
import time
from typing import Dict, Iterable, Optional

# package import name -> key in the record
PACKAGE_KEYS = {
    'fan_mm': 'fan_mm', 'numpy': 'numpy', 'scipy': 'scipy', 'skimage': 'skimage', 'cv2': 'opencv',
    'numba': 'numba', 'imagecorruptions': 'imagecorruptions', 'torch': 'torch', 'torchvision': 'torchvision',
    'timm': 'timm', 'mmengine': 'mmengine', 'mmcv': 'mmcv', 'mmdet': 'mmdet', 'mmseg': 'mmseg', 'PIL': 'pillow',
}
CORRUPTION_PACKAGES = ('numpy', 'scipy', 'skimage', 'cv2', 'numba')
TRAINING_PACKAGES = ('torch', 'torchvision', 'timm', 'mmengine', 'mmcv', 'mmdet', 'mmseg')
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'NUMBA_NUM_THREADS')


def package_versions(packages: Iterable[str]) -> Dict[str, str]:
    """``{record key: version}`` of the installed ones among ``packages`` (import names)."""
    versions = {}
    for name in packages:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        version = getattr(module, '__version__', None)
        if version is not None:
            versions[PACKAGE_KEYS.get(name, name)] = str(version)
    return versions


def collect_environment(packages: Iterable[str] = ('fan_mm',) + CORRUPTION_PACKAGES + TRAINING_PACKAGES,
                        device: Optional[str] = None) -> Dict[str, object]:
    """Date, Python, CPU, thread settings, package versions and, for a CUDA ``device``, the GPU.

    ``device`` is a torch device string ('cpu', 'cuda', 'cuda:1'); without it torch is not asked
    about devices."""
    env: Dict[str, object] = dict(
        date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        python=platform.python_version(),
        cpu=platform.processor() or platform.machine(),
        cpu_count=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(),
        threads={k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
    )
    env.update(package_versions(packages))
    if device is not None:
        import torch
        dev = torch.device(device)
        env['device'] = str(dev)
        env['torch_threads'] = torch.get_num_threads()
        if dev.type == 'cuda' and torch.cuda.is_available():
            env['gpu'] = torch.cuda.get_device_name(dev)
            env['cuda'] = torch.version.cuda
    return env
