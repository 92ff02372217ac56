"""Packaging for fan_mm.

The pins live in ``requirements/`` (as in mmdet and mmseg): ``install_requires`` is
``requirements/runtime.txt``, the OpenMMLab stack is the ``mim`` extra
(``requirements/mminstall.txt``) and the test toolchain the ``tests`` extra. Install with
``install.sh``, which also builds mmcv with its compiled ops (PyPI has only its sdist, which
must be built against the installed torch) and installs fan_mm itself with ``--no-deps``.
"""
import os.path as osp
import re

from setuptools import find_packages, setup


def read_version():
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'fan_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(name):
    """Requirement lines of requirements/<name> (comments and -r includes dropped)."""
    lines = []
    with open(osp.join(osp.dirname(__file__), 'requirements', name)) as f:
        for line in f:
            line = re.sub(r'#.*', '', line).strip()
            if line and not line.startswith('-r'):
                lines.append(line)
    return lines


setup(
    name='fan_mm',
    version=read_version(),
    description='FAN and LV-ViT backbones for mmdetection / mmsegmentation, '
                'with a corruption-robustness benchmark',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read()
    if osp.exists(osp.join(osp.dirname(__file__), 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['fan_mm', 'fan_mm.*']),
    include_package_data=True,
    python_requires='>=3.11',  # torch 2.15 (requirements/runtime.txt) needs it
    install_requires=read_requirements('runtime.txt'),
    extras_require={'mim': read_requirements('mminstall.txt'), 'tests': read_requirements('tests.txt')},
    license='Apache-2.0',
    zip_safe=False,
)
