"""mmdet / mmseg config -> built model, one function for the tools, the analysis and the benchmarks."""
import importlib
import os.path as osp
from typing import Optional

from ..registry import CODEBASES


def load_config(config, cfg_options: Optional[dict] = None):
    """``mmengine.Config`` of ``config``: a path, ``'mmdet::x/y.py'`` / ``'mmseg::x/y.py'`` (a config shipped
    inside the package, mim layout) or a ``Config`` already; ``cfg_options`` merged in."""
    from mmengine.config import Config
    if isinstance(config, Config):
        cfg = config.copy()
    else:
        pkg, sep, rel = str(config).partition('::')
        if sep:
            config = osp.join(osp.dirname(importlib.import_module(pkg).__file__), '.mim', 'configs', rel)
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file not found: {config}')
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def disable_backbone_compile(cfg) -> bool:
    """Set ``model.backbone.compile_blocks=False`` where the config's backbone has that option (fan_mm's
    backbones, whose model configs compile the blocks for GPU runs; mmdet's / mmseg's backbones have no
    such option and run eagerly anyway), in place. True if it was on."""
    backbone = cfg.get('model', {}).get('backbone')
    if not backbone or backbone.get('compile_blocks', False) is False:  # {} and True compile too
        return False
    backbone['compile_blocks'] = False
    return True


def config_scope(cfg) -> str:
    """'mmdet' or 'mmseg': the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in CODEBASES:
        raise ValueError(f'{cfg.filename}: default_scope={scope!r}; fan_mm builds mmdet or mmseg configs '
                         "(inherit their default_runtime, or set default_scope='mmdet' / 'mmseg')")
    return scope


def strip_pretrained(node) -> None:
    """Drop every ``init_cfg`` of type Pretrained (and ``pretrained=``) below ``node``, in place: random
    weights, nothing read or downloaded."""
    if isinstance(node, dict):
        ic = node.get('init_cfg')
        if isinstance(ic, dict) and ic.get('type') == 'Pretrained':
            node['init_cfg'] = None
        elif isinstance(ic, list):
            node['init_cfg'] = [c for c in ic if c.get('type') != 'Pretrained'] or None
        if node.get('pretrained') is not None and 'type' in node:
            node['pretrained'] = None
        for v in node.values():
            strip_pretrained(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            strip_pretrained(v)


def build_from_config(config, cfg_options: Optional[dict] = None, *, part: Optional[str] = None,
                      pretrained: bool = True):
    """The mmdet / mmseg model of ``config`` (see ``load_config``), built in the config's registry scope.

    The default scope is set from the config's ``default_scope`` (as the runner sets it), the codebase's
    models and fan_mm's backbones are registered first. ``part='backbone'`` (any key of ``cfg.model``)
    builds only that part. ``pretrained=False`` drops every Pretrained ``init_cfg`` (random weights).
    Weights are not initialised here: call ``model.init_weights()`` (it reads Pretrained files).
    """
    from mmengine.registry import init_default_scope
    cfg = load_config(config, cfg_options)
    if 'model' not in cfg:
        raise ValueError(f'{cfg.filename}: no model in this config')
    scope = config_scope(cfg)
    importlib.import_module(f'{scope}.models')  # registers the codebase's models
    import fan_mm.models  # noqa: F401  (registers fan_mm's backbones and necks)
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model_cfg = cfg.model
    if part is not None:
        if part not in model_cfg:
            raise ValueError(f'{cfg.filename}: no model.{part} in this config')
        model_cfg = model_cfg[part]
    model_cfg = model_cfg.copy()
    if not pretrained:
        strip_pretrained(model_cfg)
    return registry.build(model_cfg)
