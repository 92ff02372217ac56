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

It then merges the groups whose settings are equal. mmengine makes one group per parameter as soon
as ``paramwise_cfg`` is set (400 for Mask R-CNN FAN-S-Hybrid), and torch's optimizers run their
step group by group: AdamW's host time grows with the number of groups, whatever the implementation
(foreach or fused). The recipes of the papers need two to four distinct settings. The update of every
parameter is the same either way; only the state dict's layout changes, and a checkpoint saved with
one group per parameter still loads (:func:`_unmerge_hook`).
"""
import functools
from typing import Dict, List, Optional, Sequence

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

__all__ = ['NoDecayOptimWrapperConstructor', 'NORM_TYPES', 'is_norm_module', 'merge_param_groups']

# LayerNorm subclasses (timm / fan_mm LayerNorm2d, ConvNeXt's channels-first norm) count too.
NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
_MISSING = object()


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
        merge_groups (bool): one parameter group per distinct setting (lr, weight decay, ...)
            instead of mmengine's one per parameter. Default True; the optimizer's step costs
            the host a fraction of the time (see the module docstring).

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
        self.merge_groups = bool(paramwise_cfg.pop('merge_groups', True))
        self._unmerged_order: Optional[List[int]] = None
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
        if self.merge_groups:
            merged, order = merge_param_groups(params[first:], self.optimizer_cfg)
            print_log(f'NoDecayOptimWrapperConstructor: {len(merged)} parameter groups '
                      f'(from {len(params) - first})', logger='current')
            params[first:] = merged
            self._unmerged_order = order

    def __call__(self, model: nn.Module) -> OptimWrapper:
        self._unmerged_order = None
        optim_wrapper = super().__call__(model)
        if self._unmerged_order is not None:
            optim_wrapper.optimizer.register_load_state_dict_pre_hook(
                functools.partial(_unmerge_hook, order=self._unmerged_order))
        return optim_wrapper


def _settings(group: dict, defaults: dict) -> Dict[str, object]:
    """A group's settings as the optimizer will see them: a key the group leaves out takes the
    optimizer config's value (torch fills the rest from the class defaults, the same for all)."""
    keys = (set(group) | set(defaults)) - {'params', 'type'}
    return {k: group.get(k, defaults.get(k, _MISSING)) for k in sorted(keys)}


def merge_param_groups(groups: List[dict], defaults: dict):
    """``(merged, order)``: ``groups`` with equal settings (:func:`_settings`) merged, in the order of
    their first group, parameters in their order; ``order[j]`` is the index among ``groups``'
    parameters of the merged groups' ``j``-th."""
    merged: Dict[tuple, dict] = {}
    order: List[int] = []
    members: Dict[tuple, List[int]] = {}
    index = 0
    for group in groups:
        settings = _settings(group, defaults)
        key = tuple((k, repr(v)) for k, v in settings.items())
        if key not in merged:
            merged[key] = dict({k: v for k, v in settings.items() if v is not _MISSING}, params=[])
            members[key] = []
        for p in group['params']:
            merged[key]['params'].append(p)
            members[key].append(index)
            index += 1
    for key in merged:
        order.extend(members[key])
    return list(merged.values()), order


def _unmerge_hook(optimizer, state_dict: dict, order: List[int]):
    """Load-state-dict pre-hook of a merged optimizer: a state dict with one group per parameter (as
    mmengine's constructor makes, and fan_mm's before it merged them) is laid out as the merged groups,
    so that ``--resume`` from such a checkpoint continues as it would have; other layouts pass through. Either
    way the groups keep this optimizer's implementation (fused / foreach). The parameter schedulers' state is
    mmengine's to load: a scheduler that keeps per-group base values (cosine annealing) gets the saved list and
    reads its first entries; the recipes' linear, step and poly schedules read each group's own values."""
    saved = state_dict['param_groups']
    if len(saved) == len(optimizer.param_groups):
        return _keep_implementation(optimizer, state_dict)
    if len(saved) != len(order) or any(len(g['params']) != 1 for g in saved):
        return None
    state, groups, position = {}, [], 0
    for group in optimizer.param_groups:
        members = [saved[order[position + i]] for i in range(len(group['params']))]
        options = {k: v for k, v in members[0].items() if k != 'params'}
        for m in members[1:]:
            other = {k: v for k, v in m.items() if k != 'params'}
            if other != options:
                raise ValueError(
                    'optimizer state dict: its groups (one per parameter) cannot be merged as this optimizer\'s '
                    f'are, two of them differ ({options} against {other}); build the optimizer with '
                    'paramwise_cfg=dict(merge_groups=False, ...) to load it')
        ids = list(range(position, position + len(members)))
        for new_id, m in zip(ids, members):
            old_id = m['params'][0]
            if old_id in state_dict['state']:
                state[new_id] = state_dict['state'][old_id]
        groups.append(dict(options, params=ids))
        position += len(members)
    return _keep_implementation(optimizer, dict(state_dict, state=state, param_groups=groups))


# how a step is computed, not training state: the config's choice wins over a checkpoint's (torch's own
# load_state_dict takes every group setting from the checkpoint, and a foreach checkpoint loaded into a
# fused optimizer would then refuse the fp16 loss scaler's arguments)
_IMPLEMENTATION_KEYS = ('fused', 'foreach', 'capturable', 'differentiable')


def _keep_implementation(optimizer, state_dict: dict) -> dict:
    groups = [dict(saved, **{k: group[k] for k in _IMPLEMENTATION_KEYS if k in group})
              for saved, group in zip(state_dict['param_groups'], optimizer.param_groups)]
    return dict(state_dict, param_groups=groups)
