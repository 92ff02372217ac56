"""Let mmengine 0.10.7 load (and resume from) its own checkpoints on torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7 calls
``torch.load(filename, map_location=...)`` without the argument, so a resume checkpoint
(numpy scalars in ``meta``, ``HistoryBuffer`` objects in ``message_hub``) fails with
"Unsupported global". mmengine fixed this on its main branch by passing
``weights_only=False`` (mmengine#1670, never released); we install the same behaviour
for local files by re-registering mmengine's loader for plain paths. Only files the user
names in a config or on the command line go through it, as in mmengine itself.
"""
import os.path as osp

import torch

_INSTALLED = False


def load_from_local(filename, map_location):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    return torch.load(filename, map_location=map_location, weights_only=False)


def install_mmengine_checkpoint_loader():
    """Make mmengine's local-file checkpoint loader unpickle full training checkpoints.

    Idempotent; a no-op when mmengine is not installed.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    try:
        from mmengine.runner.checkpoint import CheckpointLoader
    except ImportError:
        return
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    _INSTALLED = True
