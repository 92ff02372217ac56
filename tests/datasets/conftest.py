"""Small toy datasets shared by the dataset tests (generated once per session, in a temp dir)."""
import pytest

from fan_mm.datasets.toy import make_toy_cityscapes, make_toy_coco

COCO_ARGS = dict(num_train=6, num_val=4, size=(256, 192), seed=1)
CITYSCAPES_ARGS = dict(num_train=6, num_val=4, size=(256, 128), seed=1)


@pytest.fixture(scope='session')
def toy_coco(tmp_path_factory):
    return make_toy_coco(str(tmp_path_factory.mktemp('toy') / 'coco'), **COCO_ARGS)


@pytest.fixture(scope='session')
def toy_cityscapes(tmp_path_factory):
    return make_toy_cityscapes(str(tmp_path_factory.mktemp('toy') / 'cityscapes'), **CITYSCAPES_ARGS)
