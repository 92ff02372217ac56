"""Real adverse-condition test sets in their official layouts, beside the synthetic corruptions.

Segmentation (Cityscapes' 19 train IDs, 255 = ignore):

* ``acdc``: ACDC (Sakaridis et al., ICCV 2021), conditions fog / night / rain / snow, val split;
* ``foggy_cityscapes``: Foggy Cityscapes (Sakaridis et al., IJCV 2018), Cityscapes val rendered with fog of
  attenuation beta 0.005 / 0.01 / 0.02, labels from Cityscapes' ``gtFine``;
* ``dark_zurich``: Dark Zurich (Sakaridis et al., ICCV 2019), the 50 annotated night val images.

Detection:

* ``foggy_cityscapes_det``: Foggy Cityscapes instances, Cityscapes' 8 instance classes with the boxes and
  masks of mmdet's Cityscapes COCO-format conversion, images from the foggy renderings;
* ``coco_o``: COCO-O (Mao et al., ICCV 2023), six natural-shift domains of COCO's 80 classes in COCO format.

Nothing is downloaded. :data:`SHIFT_SETS` says where each set lives under its data root, and
:func:`check_shift_set` reports what is missing or malformed by name before an evaluation starts.
:func:`make_shift_sample` writes a few generated images in each official layout (names, folders, label
IDs), for the tests and for trying the tools. This module imports neither torch nor OpenMMLab; the dataset
classes are in :mod:`fan_mm.datasets.real_shift_datasets`.
"""
import json
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..utils.files import atomic_write
from .toy import CITYSCAPES_CLASSES, IGNORE_INDEX, render_cityscapes_sample, render_coco_sample

__all__ = ['ShiftSet', 'SHIFT_SETS', 'foggy_file_name', 'FOG_BETAS', 'COCO_O_DOMAINS', 'ACDC_CONDITIONS', 'CITYSCAPES_INSTANCE_CLASSES',
           'get_shift_set', 'check_condition', 'shift_dataset_config', 'check_shift_set', 'make_shift_sample']

ACDC_CONDITIONS = ('fog', 'night', 'rain', 'snow')
# attenuation coefficients of the three released Foggy Cityscapes densities (light -> dense)
FOG_BETAS = ('0.005', '0.01', '0.02')
COCO_O_DOMAINS = ('cartoon', 'handmake', 'painting', 'sketch', 'tattoo', 'weather')
CITYSCAPES_INSTANCE_CLASSES = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle')
# what mmdet's tools/dataset_converters/cityscapes.py writes for the val split
CITYSCAPES_INSTANCES_VAL = 'annotations/instancesonly_filtered_gtFine_val.json'


@dataclass(frozen=True)
class ShiftSet:
    """One real-shift test set: its task, conditions, where its files are and the mm dataset type."""
    name: str
    task: str                      # 'seg' or 'det'
    title: str                     # how reports name it
    conditions: Tuple[str, ...]
    dataset_type: str              # registered in mmseg's / mmdet's DATASETS
    source: str                    # where users get it
    layout: Callable[[str], Dict[str, str]] = field(repr=False)  # condition -> relative paths
    img_suffix: Callable[[str], str] = field(repr=False, default=lambda c: '')
    seg_map_suffix: str = ''
    condition_label: Callable[[str], str] = field(repr=False, default=lambda c: c)


def _acdc_layout(condition: str) -> Dict[str, str]:
    return dict(img_path=f'rgb_anon/{condition}/val', seg_map_path=f'gt/{condition}/val')


def _foggy_layout(beta: str) -> Dict[str, str]:
    return dict(img_path='leftImg8bit_foggy/val', seg_map_path='gtFine/val')


def _dark_zurich_layout(condition: str) -> Dict[str, str]:
    return dict(img_path='rgb_anon/val/night', seg_map_path='gt/val/night')


def _foggy_det_layout(beta: str) -> Dict[str, str]:
    return dict(img='leftImg8bit_foggy/val/', ann_file=CITYSCAPES_INSTANCES_VAL)


def _coco_o_layout(domain: str) -> Dict[str, str]:
    return dict(img=f'{domain}/val2017/', ann_file=f'{domain}/annotations/instances_val2017.json')


SHIFT_SETS: Dict[str, ShiftSet] = {s.name: s for s in (
    ShiftSet('acdc', 'seg', 'ACDC', ACDC_CONDITIONS, 'ACDCDataset',
             'https://acdc.vision.ee.ethz.ch (rgb_anon_trainvaltest.zip, gt_trainval.zip)', _acdc_layout,
             img_suffix=lambda c: '_rgb_anon.png', seg_map_suffix='_gt_labelTrainIds.png'),
    ShiftSet('foggy_cityscapes', 'seg', 'Foggy Cityscapes', FOG_BETAS, 'FoggyCityscapesDataset',
             'https://www.cityscapes-dataset.com (leftImg8bit_trainvaltest_foggy.zip beside gtFine with '
             'labelTrainIds made by mmseg\'s tools/dataset_converters/cityscapes.py)', _foggy_layout,
             img_suffix=lambda b: f'_leftImg8bit_foggy_beta_{b}.png', seg_map_suffix='_gtFine_labelTrainIds.png',
             condition_label=lambda b: f'fog beta {b}'),
    ShiftSet('dark_zurich', 'seg', 'Dark Zurich', ('night',), 'DarkZurichDataset',
             'https://www.trace.ethz.ch/publications/2019/GCMA_UIoU (Dark_Zurich_val_anon.zip)',
             _dark_zurich_layout, img_suffix=lambda c: '_rgb_anon.png', seg_map_suffix='_gt_labelTrainIds.png'),
    ShiftSet('foggy_cityscapes_det', 'det', 'Foggy Cityscapes (instances)', FOG_BETAS, 'FoggyCityscapesInstanceDataset',
             'https://www.cityscapes-dataset.com (leftImg8bit_trainvaltest_foggy.zip; boxes and masks from '
             'mmdet\'s tools/dataset_converters/cityscapes.py on gtFine)', _foggy_det_layout,
             img_suffix=lambda b: f'_leftImg8bit_foggy_beta_{b}.png', condition_label=lambda b: f'fog beta {b}'),
    ShiftSet('coco_o', 'det', 'COCO-O', COCO_O_DOMAINS, 'COCOODataset',
             'https://github.com/alibaba/easyrobust/tree/main/benchmarks/coco_o (ood_coco.zip)', _coco_o_layout),
)}


def get_shift_set(name: str) -> ShiftSet:
    """The :class:`ShiftSet` called ``name``; a clear error lists the known ones."""
    if name not in SHIFT_SETS:
        raise ValueError(f'unknown real-shift set {name!r}; choose one of {sorted(SHIFT_SETS)}')
    return SHIFT_SETS[name]


def check_condition(shift: ShiftSet, condition: str) -> str:
    condition = str(condition)
    if condition not in shift.conditions:
        raise ValueError(f'{shift.name}: unknown condition {condition!r}; choose one of {list(shift.conditions)}')
    return condition


def shift_dataset_config(name: str, condition: str, data_root: str, pipeline: Sequence[dict]) -> dict:
    """The mm dataset config of one condition of a real-shift set (test mode, the given test pipeline)."""
    shift = get_shift_set(name)
    condition = check_condition(shift, condition)
    root = data_root.rstrip('/') + '/'
    paths = shift.layout(condition)
    if shift.task == 'seg':
        cfg = dict(type=shift.dataset_type, data_root=root, data_prefix=paths)
    else:
        cfg = dict(type=shift.dataset_type, data_root=root, ann_file=paths['ann_file'],
                   data_prefix=dict(img=paths['img']), filter_cfg=None)
    if shift.name.startswith('foggy_cityscapes'):
        cfg['beta'] = condition
    elif shift.name == 'acdc':
        cfg['condition'] = condition
    elif shift.name == 'coco_o':
        cfg['domain'] = condition
    return dict(cfg, test_mode=True, pipeline=list(pipeline))


# ----------------------------------------------------------------------------- checking a layout

def _seg_pairs(shift: ShiftSet, condition: str, root: str) -> Tuple[List[str], List[str]]:
    """(relative image paths, problems) of one segmentation condition."""
    paths = shift.layout(condition)
    img_dir, ann_dir = osp.join(root, paths['img_path']), osp.join(root, paths['seg_map_path'])
    problems = [f'missing folder {d}' for d in (img_dir, ann_dir) if not osp.isdir(d)]
    if problems:
        return [], problems
    suffix = shift.img_suffix(condition)
    images = sorted(osp.relpath(osp.join(d, f), img_dir) for d, _, files in os.walk(img_dir)
                    for f in files if f.endswith(suffix))
    if not images:
        problems.append(f'no images named *{suffix} under {img_dir}')
    return images, problems


def _check_label(path: str, num_classes: int) -> Optional[str]:
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if label is None:
        return f'unreadable label {path}'
    if label.ndim != 2:
        return f'{path} has {label.shape[2]} channels; expected a single-channel train-ID map'
    bad = sorted(set(np.unique(label).tolist()) - set(range(num_classes)) - {IGNORE_INDEX})
    if bad:
        return (f'{path} holds values {bad[:8]} outside the train IDs 0..{num_classes - 1} and {IGNORE_INDEX} '
                '(labelIds instead of labelTrainIds?)')
    return None


def _check_coco(ann_file: str, img_dir: str, rename: Callable[[str], str], classes: Optional[Sequence[str]]
                ) -> Tuple[int, List[str]]:
    if not osp.isfile(ann_file):
        return 0, [f'missing annotation file {ann_file}']
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except (OSError, ValueError) as e:
        return 0, [f'{ann_file} is not readable COCO json: {e}']
    problems = [f'{ann_file} has no {k!r}' for k in ('images', 'annotations', 'categories') if k not in coco]
    if problems:
        return 0, problems
    names = {c['name'] for c in coco['categories']}
    if classes is not None and not set(classes) <= names:
        problems.append(f'{ann_file} lacks the categories {sorted(set(classes) - names)}')
    missing = [im['file_name'] for im in coco['images'] if not osp.isfile(osp.join(img_dir, rename(im['file_name'])))]
    if missing:
        shown = ', '.join(rename(m) for m in missing[:3])
        problems.append(f'{len(missing)} of {len(coco["images"])} images listed in {ann_file} are missing under '
                        f'{img_dir} (e.g. {shown})')
    return len(coco['images']) - len(missing), problems


def foggy_file_name(file_name: str, beta: str) -> str:
    """Cityscapes' ``<city>/<name>_leftImg8bit.png`` -> its foggy rendering at attenuation ``beta``."""
    stem = file_name[:-len('_leftImg8bit.png')] if file_name.endswith('_leftImg8bit.png') else osp.splitext(file_name)[0]
    return f'{stem}_leftImg8bit_foggy_beta_{beta}.png'


def check_shift_set(name: str, data_root: str, conditions: Optional[Sequence[str]] = None,
                    check_labels: bool = True) -> Dict[str, dict]:
    """``{condition: {'images': n, 'problems': [...]}}`` for a real-shift set laid out under ``data_root``.

    Checks that each condition's folders and annotation files exist, that every image has its label (segmentation)
    or every listed image exists (detection), and, with ``check_labels``, that label maps are single-channel
    train-ID maps."""
    shift = get_shift_set(name)
    conditions = [check_condition(shift, c) for c in (conditions or shift.conditions)]
    report = {}
    for condition in conditions:
        if shift.task == 'seg':
            images, problems = _seg_pairs(shift, condition, data_root)
            paths = shift.layout(condition)
            suffix = shift.img_suffix(condition)
            unlabelled, bad_labels = [], []
            for rel in images:
                label = osp.join(data_root, paths['seg_map_path'], rel[:-len(suffix)] + shift.seg_map_suffix)
                if not osp.isfile(label):
                    unlabelled.append(rel)
                elif check_labels:
                    problem = _check_label(label, len(CITYSCAPES_CLASSES))
                    if problem:
                        bad_labels.append(problem)
            if unlabelled:
                problems.append(f'{len(unlabelled)} of {len(images)} images have no *{shift.seg_map_suffix} label '
                                f'(e.g. {unlabelled[0]})')
            problems += bad_labels[:3] + ([f'... and {len(bad_labels) - 3} more bad labels'] if len(bad_labels) > 3 else [])
            count = len(images) - len(unlabelled)
        else:
            paths = shift.layout(condition)
            if shift.name == 'foggy_cityscapes_det':
                rename = lambda f, b=condition: foggy_file_name(f, b)  # noqa: E731
                classes = CITYSCAPES_INSTANCE_CLASSES
            else:
                rename, classes = (lambda f: f), None
            count, problems = _check_coco(osp.join(data_root, paths['ann_file']), osp.join(data_root, paths['img']),
                                          rename, classes)
        report[condition] = dict(images=count, problems=problems)
    return report


# ----------------------------------------------------------------------------- generated samples

def _write_png(path: str, img: np.ndarray) -> None:
    ok, buf = cv2.imencode('.png', img)
    assert ok, path
    atomic_write(path, buf.tobytes())


def _seg_sample(index: int, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    rgb, label = render_cityscapes_sample(0, 'val', index, size=size)
    return rgb[..., ::-1].copy(), label


def make_shift_sample(name: str, root: str, num_images: int = 2, size: Tuple[int, int] = (128, 64)) -> str:
    """Write ``num_images`` generated images per condition of real-shift set ``name`` under ``root`` in its
    official layout (file names, folders, label IDs, annotation files); returns ``root``.

    The images are fan_mm's toy street scenes / shapes, so the samples test loading, evaluation and reporting,
    not accuracy."""
    shift = get_shift_set(name)
    if shift.name == 'acdc':
        for condition in shift.conditions:
            for i in range(num_images):
                seq = f'GOPR{475 + i:04d}'
                stem = f'{seq}/{seq}_frame_{i + 1:06d}'
                img, label = _seg_sample(i, size)
                _write_png(osp.join(root, 'rgb_anon', condition, 'val', f'{stem}_rgb_anon.png'), img)
                _write_png(osp.join(root, 'gt', condition, 'val', f'{stem}_gt_labelTrainIds.png'), label)
    elif shift.name == 'dark_zurich':
        for i in range(num_images):
            stem = f'GOPR0356/GOPR0356_frame_{321 + i:06d}'
            img, label = _seg_sample(i, size)
            _write_png(osp.join(root, 'rgb_anon', 'val', 'night', f'{stem}_rgb_anon.png'), (img * 0.3).astype(np.uint8))
            _write_png(osp.join(root, 'gt', 'val', 'night', f'{stem}_gt_labelTrainIds.png'), label)
    elif shift.name == 'foggy_cityscapes':
        for i in range(num_images):
            stem = f'frankfurt/frankfurt_000000_{i:06d}'
            img, label = _seg_sample(i, size)
            _write_png(osp.join(root, 'gtFine', 'val', f'{stem}_gtFine_labelTrainIds.png'), label)
            for beta in shift.conditions:
                fog = (img * (1 - 20 * float(beta)) + 255 * 20 * float(beta)).astype(np.uint8)
                _write_png(osp.join(root, 'leftImg8bit_foggy', 'val', f'{stem}_leftImg8bit_foggy_beta_{beta}.png'), fog)
    else:
        _make_det_sample(shift, root, num_images, size)
    return root


def _make_det_sample(shift: ShiftSet, root: str, num_images: int, size: Tuple[int, int]) -> None:
    classes = CITYSCAPES_INSTANCE_CLASSES if shift.name == 'foggy_cityscapes_det' else _COCO_SAMPLE_CLASSES
    categories = [dict(id=i + 1, name=c) for i, c in enumerate(classes)]
    groups = [(None, shift.layout(shift.conditions[0]))] if shift.name == 'foggy_cityscapes_det' else \
        [(d, shift.layout(d)) for d in shift.conditions]
    for domain, paths in groups:
        images, annotations = [], []
        for i in range(num_images):
            sample = render_coco_sample(0, 'val', i, size=size)
            img = sample.image[..., ::-1].copy()
            if shift.name == 'foggy_cityscapes_det':
                file_name = f'frankfurt/frankfurt_000000_{i:06d}_leftImg8bit.png'
                for beta in shift.conditions:
                    _write_png(osp.join(root, paths['img'], foggy_file_name(file_name, beta)), img)
            else:
                file_name = f'{i + 1:012d}.jpg'
                ok, buf = cv2.imencode('.jpg', img)
                atomic_write(osp.join(root, paths['img'], file_name), buf.tobytes())
            images.append(dict(id=i + 1, file_name=file_name, width=size[0], height=size[1]))
            for obj in sample.objects:
                ys, xs = np.nonzero(obj.mask)
                x0, y0 = float(xs.min()), float(ys.min())
                w, h = float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)
                annotations.append(dict(id=len(annotations) + 1, image_id=i + 1, category_id=obj.category_id,
                                        bbox=[x0, y0, w, h], area=float(obj.mask.sum()), iscrowd=0,
                                        segmentation=obj.segmentation))
        coco = dict(images=images, annotations=annotations, categories=categories)
        atomic_write(osp.join(root, paths['ann_file']), json.dumps(coco).encode())


# The toy shapes stand in for 4 of COCO's 80 classes in the COCO-O samples (category ids 1..4 of the toy set);
# a real COCO-O annotation file lists all 80.
_COCO_SAMPLE_CLASSES = ('person', 'bicycle', 'car', 'motorcycle')
