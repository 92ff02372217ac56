"""The protocol's checks and its channel-order vocabulary (fan_mm.robustness.protocol)."""
import subprocess
import sys

import numpy as np
import pytest

from fan_mm import corruptions
from fan_mm.robustness import codec, protocol
from fan_mm.utils import image_io

from .conftest import REPO


def test_one_channel_order_vocabulary():
    # The engine's tuple is the protocol's, and it extends the memory layouts of image_io.
    assert protocol.CHANNEL_ORDERS is corruptions.CHANNEL_ORDERS
    assert protocol.CHANNEL_ORDERS == image_io.CHANNEL_ORDERS + ('bgr_legacy',)
    assert protocol.PROTOCOL_CHANNEL_ORDERS == ('rgb', 'bgr_legacy')
    assert protocol.engine_channel_order('rgb') == 'bgr'
    assert protocol.engine_channel_order('bgr_legacy') == 'bgr_legacy'
    with pytest.raises(protocol.ProtocolError, match='channel_order'):
        protocol.check_channel_order('bgr')  # a layout, not a protocol


@pytest.mark.parametrize('check, bad, match', [
    (protocol.check_severity, 0, '1..5'), (protocol.check_severity, True, '1..5'),
    (protocol.check_severity, 2.0, '1..5'), (protocol.check_seed, -1, 'non-negative'),
    (protocol.check_seed, 1.5, 'non-negative'), (protocol.check_corruption, 'rain', 'unknown corruption'),
    (protocol.check_suite, 'imagenet', 'unknown suite')])
def test_checks_raise_protocol_errors(check, bad, match):
    with pytest.raises(protocol.ProtocolError, match=match):
        check(bad)


def test_codec_corrupts_a_loaded_bgr_image_as_rgb():
    rng = np.random.RandomState(0)
    bgr = rng.randint(0, 256, (40, 48, 3), dtype=np.uint8)
    rgb_result = corruptions.corrupt(np.ascontiguousarray(bgr[..., ::-1]), 'frost', 2, seed=5)
    assert np.array_equal(codec.corrupt_loaded_image(bgr, 'frost', 2, 5), rgb_result[..., ::-1])
    legacy = corruptions.corrupt(bgr, 'frost', 2, seed=5)
    assert np.array_equal(codec.corrupt_loaded_image(bgr, 'frost', 2, 5, 'bgr_legacy'), legacy)


def test_light_modules_import_no_torch_or_openmmlab():
    # fan_mm/__init__ imports the models (torch) today: load the light modules without it.
    code = ('import sys, types, os; pkg = types.ModuleType("fan_mm"); pkg.__path__ = [os.path.join(sys.argv[1], '
            '"fan_mm")]; sys.modules["fan_mm"] = pkg; '
            'import fan_mm.corruptions, fan_mm.robustness.protocol, fan_mm.robustness.codec, '
            'fan_mm.robustness.synthesis; '
            'heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "mmcv", "mmengine", "mmdet", '
            '"mmseg")); print(heavy); sys.exit(1 if heavy else 0)')
    cp = subprocess.run([sys.executable, '-c', code, REPO], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stdout + cp.stderr
