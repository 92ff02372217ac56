"""Config surgery for robustness runs: point a test dataloader at a corrupted copy on disk,
or insert the on-the-fly ``CorruptImage`` transform. Works on any mmdet / mmseg dataloader
config (also wrapped datasets); nothing here imports mmdet or mmseg except to read a
dataset class's default ``img_suffix``.

    cfg.test_dataloader = corrupt_on_the_fly(cfg.test_dataloader, 'fog', 3)
    cfg.test_dataloader = use_corrupted_copy(cfg.test_dataloader, 'data/cityscapes-c', 'fog', 3)
"""
import copy
import inspect
import os.path as osp
from typing import Callable, List, Optional

from . import protocol
from .codec import output_name
from .synthesis import SynthesisError, load_manifest, pair_image_dir

__all__ = ['CUSTOM_IMPORT', 'ConfigSurgeryError', 'leaf_datasets', 'image_prefix_key', 'image_dir',
           'loader_index', 'corrupt_on_the_fly', 'use_corrupted_copy', 'add_custom_import']

CUSTOM_IMPORT = 'fan_mm.robustness.transforms'
_LOADERS = ('LoadImageFromFile',)
_PREFIX_KEYS = ('img_path', 'img')  # mmseg, mmdet


class ConfigSurgeryError(ValueError):
    """The config does not have what a robustness run needs (named in the message)."""


def _type_name(t) -> str:
    name = t if isinstance(t, str) else getattr(t, '__name__', str(t))
    return name.rsplit('.', 1)[-1]


def leaf_datasets(dataset_cfg) -> List[dict]:
    """The dataset configs that own a pipeline, inside wrappers (``dataset=``/``datasets=``)."""
    if 'datasets' in dataset_cfg:
        return [leaf for d in dataset_cfg['datasets'] for leaf in leaf_datasets(d)]
    if 'dataset' in dataset_cfg and 'pipeline' not in dataset_cfg:
        return leaf_datasets(dataset_cfg['dataset'])
    return [dataset_cfg]


def image_prefix_key(dataset_cfg) -> str:
    prefix = dataset_cfg.get('data_prefix') or {}
    for key in _PREFIX_KEYS:
        if key in prefix:
            return key
    raise ConfigSurgeryError(f'dataset {dataset_cfg.get("type")!r} has no data_prefix.img_path (mmseg) or '
                             f'data_prefix.img (mmdet); found data_prefix={dict(prefix)}')


def image_dir(dataset_cfg) -> str:
    """The absolute image folder of a dataset config (``data_root`` + image prefix)."""
    prefix = dataset_cfg['data_prefix'][image_prefix_key(dataset_cfg)] or ''
    root = dataset_cfg.get('data_root') or ''
    path = prefix if osp.isabs(prefix) else osp.join(root, prefix)
    return osp.abspath(path or '.')


def loader_index(pipeline) -> int:
    for i, step in enumerate(pipeline):
        if _type_name(step.get('type', '')) in _LOADERS:
            return i
    raise ConfigSurgeryError('test pipeline has no LoadImageFromFile step: '
                             f'{[_type_name(s.get("type", "?")) for s in pipeline]}')


def _edit_leaves(dataloader_cfg, edit: Callable[[dict], None]):
    new = copy.deepcopy(dataloader_cfg)
    leaves = leaf_datasets(new['dataset'])
    for leaf in leaves:
        if 'pipeline' not in leaf:
            raise ConfigSurgeryError(f'dataset {leaf.get("type")!r} has no pipeline')
        edit(leaf)
    return new


def corrupt_on_the_fly(dataloader_cfg, corruption: str, severity: int, seed: int = 0,
                       channel_order: str = 'rgb'):
    """A copy of ``dataloader_cfg`` whose images are corrupted by ``CorruptImage`` right
    after loading (before any resize), keyed relative to each dataset's image folder."""
    corruption = protocol.check_corruption(corruption)
    severity = protocol.check_severity(severity)
    seed = protocol.check_seed(seed)
    channel_order = protocol.check_channel_order(channel_order)

    def edit(leaf):
        pipeline = list(leaf['pipeline'])
        load = pipeline[loader_index(pipeline)]
        if load.get('color_type', 'color') != 'color':
            raise ConfigSurgeryError(f'LoadImageFromFile(color_type={load.get("color_type")!r}): corruptions need '
                                     "colour images (color_type='color')")
        pipeline.insert(loader_index(pipeline) + 1, dict(
            type='CorruptImage', corruption=corruption, severity=severity, seed=seed,
            key_root=image_dir(leaf), channel_order=channel_order))
        leaf['pipeline'] = pipeline

    return _edit_leaves(dataloader_cfg, edit)


def _default_img_suffix(dataset_type) -> Optional[str]:
    """``img_suffix`` default of an mmseg dataset class (None if it has no such argument)."""
    try:
        from mmseg.registry import DATASETS
    except ImportError:
        return None
    cls = dataset_type if inspect.isclass(dataset_type) else DATASETS.get(dataset_type)
    if cls is None:
        return None
    param = inspect.signature(cls.__init__).parameters.get('img_suffix')
    return None if param is None else param.default


def use_corrupted_copy(dataloader_cfg, corrupted_root: str, corruption: str, severity: int,
                       codebase: Optional[str] = None):
    """A copy of ``dataloader_cfg`` that reads (corruption, severity) from ``corrupted_root``.

    The image prefix becomes ``corrupted_root/<corruption>/<severity>/<image_dir>`` (the
    -C tree mirrors the source dataset's root); annotations stay where they are. When the
    copy was stored in another format (COCO JPEG -> PNG), mmseg datasets get the new
    ``img_suffix`` and other datasets a ``CorruptedImageName`` step before the loader.
    ``codebase`` ('mmdet' / 'mmseg') says where to look dataset classes up (default: mmseg
    first). Raises ``SynthesisError`` when the pair is not complete on disk.
    """
    manifest = load_manifest(corrupted_root)
    pair = manifest.get('pairs', {}).get(corruption, {}).get(str(int(severity)))
    if pair is None:
        raise SynthesisError(
            f'{corrupted_root} has no complete {corruption} severity {severity} (complete: '
            f'{ {c: sorted(s) for c, s in manifest.get("pairs", {}).items()} }); run '
            'tools/make_corrupted_dataset.py with these corruptions and severities to write or finish it')
    fmt = manifest['settings']['format']
    folder = pair_image_dir(corrupted_root, corruption, severity)

    def edit(leaf):
        key = image_prefix_key(leaf)
        prefix = dict(leaf['data_prefix'])
        prefix[key] = folder + osp.sep
        leaf['data_prefix'] = prefix
        suffix = leaf.get('img_suffix', None if codebase == 'mmdet' else _default_img_suffix(leaf.get('type')))
        if suffix is not None:  # mmseg: images are listed by suffix
            new_suffix = output_name('x' + suffix, fmt)[1:]
            if new_suffix != suffix:
                leaf['img_suffix'] = new_suffix
        else:  # annotation-file datasets (mmdet): rename each path before loading
            pipeline = list(leaf['pipeline'])
            pipeline.insert(loader_index(pipeline), dict(type='CorruptedImageName', format=fmt))
            leaf['pipeline'] = pipeline

    return _edit_leaves(dataloader_cfg, edit)


def add_custom_import(cfg, module: str = CUSTOM_IMPORT):
    """Make sure ``custom_imports`` loads ``module`` (the transforms' registration)."""
    imports = dict(cfg.get('custom_imports') or {})
    names = imports.get('imports', [])
    names = [names] if isinstance(names, str) else list(names)
    if module not in names:
        names.append(module)
    imports['imports'] = names
    imports.setdefault('allow_failed_imports', False)
    cfg['custom_imports'] = imports
    return cfg
