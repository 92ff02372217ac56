"""CorruptImage / CorruptedImageName and the config surgery, against synthesised files."""
import copy
import os.path as osp

import cv2
import numpy as np
import pytest

pytest.importorskip('mmdet.registry')
pytest.importorskip('mmseg.registry')

from fan_mm.robustness import protocol, synthesis  # noqa: E402
from fan_mm.robustness.config import (ConfigSurgeryError, corrupt_on_the_fly, image_dir,  # noqa: E402
                                      use_corrupted_copy)
from fan_mm.robustness.transforms import CorruptedImageName, CorruptImage, image_key  # noqa: E402


def _load(path, to_float32=False):
    from mmcv.transforms import LoadImageFromFile
    return LoadImageFromFile(to_float32=to_float32)(dict(img_path=path))


def test_registered_in_both_codebases_without_replacing_mmdets_corrupt():
    from mmdet.registry import TRANSFORMS as DET
    from mmseg.registry import TRANSFORMS as SEG
    for name, cls in (('CorruptImage', CorruptImage), ('CorruptedImageName', CorruptedImageName)):
        assert DET.get(name) is cls and SEG.get(name) is cls
    corrupt = DET.get('Corrupt')  # mmdet's own, still there
    assert corrupt.__name__ == 'Corrupt' and corrupt.__module__.split('.')[0] == 'mmdet'


def test_on_the_fly_equals_synthesised_file(toy_city, tmp_path):
    dst = str(tmp_path / 'c')
    synthesis.synthesize(toy_city, dst, suite='all', corruptions=['frost', 'contrast'], severities=[2], seed=7,
                         workers=0, progress=False)
    root = osp.join(toy_city, 'leftImg8bit', 'val')
    for key in synthesis.resolve_source(toy_city).keys:
        for c in ('frost', 'contrast'):
            on_disk = cv2.imread(osp.join(synthesis.pair_image_dir(dst, c, 2), key), cv2.IMREAD_COLOR)
            out = CorruptImage(c, 2, seed=7, key_root=root)(_load(osp.join(root, key)))
            assert out['img'].dtype == np.uint8 and np.array_equal(out['img'], on_disk)
            # to_float32 keeps the dtype and the values.
            out32 = CorruptImage(c, 2, seed=7, key_root=root)(_load(osp.join(root, key), to_float32=True))
            assert out32['img'].dtype == np.float32 and np.array_equal(out32['img'], on_disk.astype(np.float32))
    # Another seed or key root gives other pixels for the random corruption.
    path = osp.join(root, key)
    base = CorruptImage('frost', 2, seed=7, key_root=root)(_load(path))['img']
    assert not np.array_equal(CorruptImage('frost', 2, seed=8, key_root=root)(_load(path))['img'], base)
    assert not np.array_equal(CorruptImage('frost', 2, seed=7)(_load(path))['img'], base)  # key = file name
    # mmdet's legacy protocol (BGR array corrupted as RGB) changes frost, not contrast.
    legacy = CorruptImage('frost', 2, seed=7, key_root=root, channel_order='bgr_legacy')(_load(path))['img']
    assert not np.array_equal(legacy, base)
    rgb_c = CorruptImage('contrast', 2, key_root=root)(_load(path))['img']
    assert np.array_equal(CorruptImage('contrast', 2, key_root=root, channel_order='bgr_legacy')(_load(path))['img'],
                          rgb_c)


def test_keys_and_argument_errors(tmp_path):
    assert image_key('/data/city/leftImg8bit/val/a/b.png', '/data/city/leftImg8bit/val') == 'a/b.png'
    assert image_key('/data/city/leftImg8bit/val/a/b.png') == 'b.png'
    with pytest.raises(ValueError, match='not inside key_root'):
        image_key('/elsewhere/b.png', '/data/city')
    with pytest.raises(ValueError, match='unknown corruption'):
        CorruptImage('fogg', 1)
    with pytest.raises(ValueError, match='1..5'):
        CorruptImage('fog', 0)
    with pytest.raises(ValueError, match='channel_order'):
        CorruptImage('fog', 1, channel_order='bgr')
    with pytest.raises(ValueError, match='colour image'):
        CorruptImage('fog', 1)(dict(img=np.zeros((40, 40), np.uint8), img_path='x.png'))
    assert CorruptedImageName()(dict(img_path='v/0001.jpg'))['img_path'] == 'v/0001.png'
    assert CorruptedImageName('jpeg')(dict(img_path='v/0001.png'))['img_path'] == 'v/0001.jpg'
    with pytest.raises(ValueError, match='unknown format'):
        CorruptedImageName('webp')


SEG_LOADER = dict(
    batch_size=1, dataset=dict(type='CityscapesDataset', data_root='data/cs/', data_prefix=dict(
        img_path='leftImg8bit/val', seg_map_path='gtFine/val'), pipeline=[
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=(64, 32)), dict(type='PackSegInputs')]))
DET_LOADER = dict(
    batch_size=1, dataset=dict(type='RepeatDataset', times=1, dataset=dict(
        type='CocoDataset', data_root='data/coco/', ann_file='a.json', data_prefix=dict(img='val2017/'),
        pipeline=[dict(type='mmdet.LoadImageFromFile'), dict(type='Resize', scale=(64, 32)),
                  dict(type='PackDetInputs')])))


def test_config_surgery_on_the_fly():
    cfg = corrupt_on_the_fly(SEG_LOADER, 'fog', 3, seed=2)
    pipeline = cfg['dataset']['pipeline']
    assert [s['type'] for s in pipeline] == ['LoadImageFromFile', 'CorruptImage', 'Resize', 'PackSegInputs']
    assert pipeline[1] == dict(type='CorruptImage', corruption='fog', severity=3, seed=2,
                               key_root=osp.abspath('data/cs/leftImg8bit/val'), channel_order='rgb')
    assert len(SEG_LOADER['dataset']['pipeline']) == 3  # the input is not modified
    both = dict(batch_size=1, dataset=dict(type='ConcatDataset', datasets=[copy.deepcopy(DET_LOADER['dataset']),
                                                                            copy.deepcopy(SEG_LOADER['dataset'])]))
    cfg = corrupt_on_the_fly(both, 'snow', 1)
    inner = cfg['dataset']['datasets'][0]['dataset']
    assert inner['pipeline'][1]['type'] == 'CorruptImage'
    assert inner['pipeline'][1]['key_root'] == osp.abspath('data/coco/val2017')
    assert cfg['dataset']['datasets'][1]['pipeline'][1]['type'] == 'CorruptImage'
    bad = copy.deepcopy(SEG_LOADER)
    bad['dataset']['pipeline'][0] = dict(type='LoadImageFromNDArray')
    with pytest.raises(ConfigSurgeryError, match='no LoadImageFromFile'):
        corrupt_on_the_fly(bad, 'fog', 1)
    bad['dataset']['pipeline'][0] = dict(type='LoadImageFromFile', color_type='grayscale')
    with pytest.raises(ConfigSurgeryError, match='colour images'):
        corrupt_on_the_fly(bad, 'fog', 1)
    assert image_dir(dict(data_root='/r', data_prefix=dict(img='/abs/imgs'))) == '/abs/imgs'


def test_config_surgery_corrupted_copy(toy_city, tmp_path):
    # A JPEG source, ADE20K-like (mmseg lists images by suffix), and a COCO-like one (mmdet).
    src = tmp_path / 'src'
    (src / 'images' / 'validation').mkdir(parents=True)
    img = cv2.imread(osp.join(toy_city, 'leftImg8bit/val', synthesis.resolve_source(toy_city).keys[0]))
    cv2.imwrite(str(src / 'images' / 'validation' / 'ADE_val_1.jpg'), img)
    dst = str(tmp_path / 'ade-c')
    synthesis.synthesize(str(src), dst, suite='all', corruptions=['contrast'], severities=[4], workers=0,
                         progress=False)
    assert synthesis.load_manifest(dst)['settings']['layout'] == 'ade20k'
    folder = synthesis.pair_image_dir(dst, 'contrast', 4)
    ade = dict(batch_size=1, dataset=dict(type='ADE20KDataset', data_root=str(src), data_prefix=dict(
        img_path='images/validation', seg_map_path='annotations/validation'), pipeline=[
        dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]))
    cfg = use_corrupted_copy(ade, dst, 'contrast', 4)
    assert cfg['dataset']['data_prefix'] == dict(img_path=folder + osp.sep, seg_map_path='annotations/validation')
    assert cfg['dataset']['img_suffix'] == '.png'  # ADE20KDataset's default is .jpg
    assert [s['type'] for s in cfg['dataset']['pipeline']] == ['LoadImageFromFile', 'PackSegInputs']
    det = use_corrupted_copy(DET_LOADER, dst, 'contrast', 4, codebase='mmdet')
    inner = det['dataset']['dataset']
    assert inner['data_prefix']['img'] == folder + osp.sep and 'img_suffix' not in inner
    assert inner['pipeline'][0] == dict(type='CorruptedImageName', format='png')
    assert inner['pipeline'][1]['type'] == 'mmdet.LoadImageFromFile'
    with pytest.raises(synthesis.SynthesisError, match='no complete contrast severity 5'):
        use_corrupted_copy(ade, dst, 'contrast', 5)
    with pytest.raises(synthesis.SynthesisError, match='not a finished corrupted dataset'):
        use_corrupted_copy(ade, str(tmp_path), 'contrast', 4)
    assert protocol.suite_corruptions('all')[0] == 'gaussian_noise'
