"""mmseg / mmdet dataset classes of the real-shift test sets (layouts in :mod:`fan_mm.datasets.real_shift`).

Importing this module registers them (configs: ``custom_imports=dict(imports=['fan_mm.datasets.real_shift_datasets'])``):
segmentation classes in mmseg's ``DATASETS`` with Cityscapes' 19 classes, detection classes in mmdet's. Each
checks its condition and its folders at construction, so a wrong name or a missing download fails before a model
runs, naming the file or folder.
"""
import os.path as osp

from ..registry import register_dataset
from .real_shift import (CITYSCAPES_INSTANCE_CLASSES, FOG_BETAS, SHIFT_SETS, check_condition,
                         foggy_file_name)

__all__ = []


def _require_dir(path: str, what: str) -> None:
    if not osp.isdir(path):
        raise FileNotFoundError(f'{what}: folder {path} does not exist (see docs/real_shift.md for the layout)')


try:
    from mmseg.datasets import CityscapesDataset as _CityscapesSeg
except ImportError:  # mmseg not installed: no segmentation sets
    _CityscapesSeg = None

try:
    from mmdet.datasets import CocoDataset as _Coco
except ImportError:  # mmdet not installed: no detection sets
    _Coco = None


if _CityscapesSeg is not None:
    class _RealShiftSegDataset(_CityscapesSeg):
        """Cityscapes classes and train-ID labels; images and labels found by suffix under ``data_prefix``."""
        SHIFT = ''

        def __init__(self, condition: str, **kwargs):
            shift = SHIFT_SETS[self.SHIFT]
            self.condition = check_condition(shift, condition)
            kwargs.setdefault('data_prefix', shift.layout(self.condition))
            super().__init__(img_suffix=shift.img_suffix(self.condition), seg_map_suffix=shift.seg_map_suffix,
                             **kwargs)

        def load_data_list(self):
            for key in ('img_path', 'seg_map_path'):
                _require_dir(self.data_prefix[key], f'{SHIFT_SETS[self.SHIFT].title} {self.condition}')
            data_list = super().load_data_list()
            if not data_list:
                raise FileNotFoundError(f'{SHIFT_SETS[self.SHIFT].title} {self.condition}: no images named '
                                        f'*{self.img_suffix} under {self.data_prefix["img_path"]}')
            return data_list

    @register_dataset('mmseg')
    class ACDCDataset(_RealShiftSegDataset):
        """ACDC: ``rgb_anon/<condition>/val/<seq>/*_rgb_anon.png``, ``gt/<condition>/val/<seq>/*_gt_labelTrainIds.png``."""
        SHIFT = 'acdc'

    @register_dataset('mmseg')
    class DarkZurichDataset(_RealShiftSegDataset):
        """Dark Zurich val: ``rgb_anon/val/night/<seq>/*_rgb_anon.png``, ``gt/val/night/<seq>/*_gt_labelTrainIds.png``."""
        SHIFT = 'dark_zurich'

        def __init__(self, condition: str = 'night', **kwargs):
            super().__init__(condition=condition, **kwargs)

    @register_dataset('mmseg')
    class FoggyCityscapesDataset(_RealShiftSegDataset):
        """Foggy Cityscapes: ``leftImg8bit_foggy/val/<city>/*_leftImg8bit_foggy_beta_<beta>.png`` with Cityscapes'
        ``gtFine/val/<city>/*_gtFine_labelTrainIds.png``; ``beta`` is one of 0.005, 0.01, 0.02."""
        SHIFT = 'foggy_cityscapes'

        def __init__(self, beta: str = FOG_BETAS[-1], **kwargs):
            super().__init__(condition=str(beta), **kwargs)

    __all__ += ['ACDCDataset', 'DarkZurichDataset', 'FoggyCityscapesDataset']


if _Coco is not None:
    class _RealShiftDetDataset(_Coco):
        SHIFT = ''

        def load_data_list(self):
            title = f'{SHIFT_SETS[self.SHIFT].title} {self.condition}'
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'{title}: annotation file {self.ann_file} does not exist '
                                        '(see docs/real_shift.md for the layout)')
            _require_dir(self.data_prefix['img'], title)
            return super().load_data_list()

    @register_dataset('mmdet')
    class FoggyCityscapesInstanceDataset(_RealShiftDetDataset):
        """Cityscapes' 8 instance classes on the foggy renderings: the COCO-format annotations of Cityscapes val
        (``annotations/instancesonly_filtered_gtFine_val.json`` from mmdet's converter) with each
        ``<city>/<name>_leftImg8bit.png`` read as ``leftImg8bit_foggy/val/<city>/<name>_leftImg8bit_foggy_beta_<beta>.png``."""
        SHIFT = 'foggy_cityscapes_det'
        METAINFO = dict(classes=CITYSCAPES_INSTANCE_CLASSES,
                        palette=[(220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100),
                                 (0, 0, 230), (119, 11, 32)])

        def __init__(self, beta: str = FOG_BETAS[-1], **kwargs):
            self.condition = check_condition(SHIFT_SETS[self.SHIFT], str(beta))
            super().__init__(**kwargs)

        def parse_data_info(self, raw_data_info: dict):
            info = super().parse_data_info(raw_data_info)
            folder, name = osp.split(info['img_path'])
            info['img_path'] = osp.join(folder, foggy_file_name(name, self.condition))
            return info

    @register_dataset('mmdet')
    class COCOODataset(_RealShiftDetDataset):
        """COCO-O: ``<domain>/val2017/*.jpg`` and ``<domain>/annotations/instances_val2017.json``, COCO's 80 classes."""
        SHIFT = 'coco_o'

        def __init__(self, domain: str, **kwargs):
            self.condition = check_condition(SHIFT_SETS[self.SHIFT], domain)
            super().__init__(**kwargs)

    __all__ += ['FoggyCityscapesInstanceDataset', 'COCOODataset']
