"""Packaging for fan_mm.

Heavy dependencies (torch, mmcv with compiled ops, mmdet, mmseg) are installed by
``install.sh`` in a tested order with pinned versions; mmcv in particular cannot be
resolved by pip alone (PyPI only has its sdist, which must be built against the
installed torch). ``install_requires`` therefore lists only what pip can resolve
without surprises.
"""
import os.path as osp

from setuptools import find_packages, setup


def read_version():
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'fan_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


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
    python_requires='>=3.9',
    install_requires=[
        'numpy',
        'scipy',
        'scikit-image',
        'opencv-python',
        'Pillow',
        'tqdm',
        'numba',
        'matplotlib',
        'scikit-learn',
    ],
    license='Apache-2.0',
    zip_safe=False,
)
