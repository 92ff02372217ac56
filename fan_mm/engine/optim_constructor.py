"""An optimizer-wrapper constructor whose "no weight decay" rules cannot be shadowed.

mmengine's ``DefaultOptimWrapperConstructor`` applies, per parameter, only the *first* matching
``custom_keys`` entry (longest key first, then alphabetical), and skips ``norm_decay_mult`` for
every parameter a custom key matched. Two consequences for the dense recipes of the papers
(head lr x10 and no decay on norms):

* with ``custom_keys={'head': dict(lr_mult=10.), 'norm': dict(decay_mult=0.)}`` the heads'
  BatchNorms (``decode_head.fusion_conv.bn.weight``) take the ``'head'`` rule and keep their
  weight decay;
* a ``'norm'`` key misses norm layers not named ``*norm*``: the ConvNeXt stem of FAN-Hybrid
  (``stem.1``, ``downsample.0``), FAN's ``dwconv.bn``, LV-ViT's stem BatchNorms.

``NoDecayOptimWrapperConstructor`` builds the parameter groups exactly as mmengine does, then
sets ``weight_decay=0`` on every parameter of a normalisation layer (found by type) and on every
parameter whose name contains one of ``no_decay_keys``, whatever rule matched it before;
learning-rate multipliers are left alone.
"""
from typing import List, Optional, Sequence

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

__all__ = ['NoDecayOptimWrapperConstructor', 'NORM_TYPES', 'is_norm_module']

# LayerNorm subclasses (timm / fan_mm LayerNorm2d, ConvNeXt's channels-first norm) count too.
NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
_OPTIONS = ('no_decay_norms', 'no_decay_keys')


def is_norm_module(module: nn.Module) -> bool:
    return isinstance(module, NORM_TYPES)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()  # mmengine's root registry: found from mmdet and mmseg
class NoDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor plus two ``paramwise_cfg`` options that override every
    other weight-decay rule (lr multipliers are untouched).

    Args (in ``paramwise_cfg``, besides mmengine's own):
        no_decay_norms (bool): weight decay 0 for every parameter of a normalisation layer
            (BatchNorm / SyncBN, LayerNorm and subclasses, GroupNorm, InstanceNorm). Default True.
        no_decay_keys (sequence of str): weight decay 0 for every parameter whose full name
            (e.g. ``backbone.trunk.pos_embed.token_projection.weight``) contains one of them,
            e.g. ``('pos_embed', 'relative_position_bias_table', 'cls_token')``. Default ().

    Example::

        optim_wrapper = dict(
            constructor='NoDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=6e-5, weight_decay=0.01),
            paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)},
                               no_decay_keys=('pos_embed', 'cls_token')))
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.no_decay_norms = bool(paramwise_cfg.pop('no_decay_norms', True))
        keys = paramwise_cfg.pop('no_decay_keys', ())
        if isinstance(keys, str) or not all(isinstance(k, str) and k for k in keys):
            raise TypeError(f'paramwise_cfg.no_decay_keys must be a list of non-empty strings, got {keys!r}')
        self.no_decay_keys: Sequence[str] = tuple(keys)
        # an empty paramwise_cfg makes mmengine skip add_params (one group for all parameters)
        paramwise_cfg.setdefault('custom_keys', {})
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module=None) -> None:
        first = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        if prefix:  # a recursive call from mmengine: the top-level call fixes everything at once
            return
        names = {id(p): n for n, p in module.named_parameters(remove_duplicate=False)}
        norm_params = set()
        if self.no_decay_norms:
            norm_params = {id(p) for m in module.modules() if is_norm_module(m)
                           for p in m.parameters(recurse=False)}
        n_norm = n_key = 0
        for group in params[first:]:
            for p in group['params']:
                name = names.get(id(p), '')
                if id(p) in norm_params:
                    n_norm += 1
                elif any(k in name for k in self.no_decay_keys):
                    n_key += 1
                else:
                    continue
                group['weight_decay'] = 0.
        print_log(f'NoDecayOptimWrapperConstructor: weight_decay=0 for {n_norm} normalisation parameters and '
                  f'{n_key} parameters matching {list(self.no_decay_keys)}', logger='current')
