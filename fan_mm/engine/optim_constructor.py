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
one group per parameter still loads (:func:`_unmerge_hook`), and ``MergedGroupsResumeHook`` lays the
parameter schedulers' per-group values of such a checkpoint out the same way when a run resumes from it.
"""
import functools
import weakref
from typing import Dict, List, Optional, Sequence

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper, OptimWrapperDict
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from ..registry import register_hook

__all__ = ['MergedGroupsResumeHook', 'NoDecayOptimWrapperConstructor', 'NORM_TYPES', 'is_norm_module',
           'merge_param_groups']

# LayerNorm subclasses (timm / fan_mm LayerNorm2d, ConvNeXt's channels-first norm) count too.
NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
_MISSING = object()
# the merge order (merge_param_groups) of each optimizer whose groups the constructor merged; weak, so that it
# goes with its optimizer
_MERGE_ORDERS = weakref.WeakKeyDictionary()


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
            _MERGE_ORDERS[optim_wrapper.optimizer] = self._unmerged_order
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
    mmengine's to load, after the optimizer's: ``MergedGroupsResumeHook`` lays out its per-group values."""
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


def saved_group_per_merged_group(optimizer, n_saved: int) -> Optional[List[int]]:
    """For an optimizer whose groups the constructor merged and a state dict of ``n_saved`` groups, one per
    parameter: for each merged group, the index of the saved group of its first parameter (the saved groups
    of its parameters all have its settings, :func:`_unmerge_hook` checks it). ``None`` where the optimizer was
    not merged or the state dict is not of that layout."""
    order = _MERGE_ORDERS.get(optimizer)
    if order is None or n_saved != len(order) or n_saved == len(optimizer.param_groups):
        return None
    sources, position = [], 0
    for group in optimizer.param_groups:
        sources.append(order[position])
        position += len(group['params'])
    return sources


# the per-group lists in the state of mmengine's parameter schedulers (ReduceOnPlateau's min_values too)
_SCHEDULER_GROUP_KEYS = ('base_values', '_last_value', 'min_values')


@register_hook
class MergedGroupsResumeHook(Hook):
    """Resuming a checkpoint saved with one parameter group per parameter into merged groups: the optimizer's
    state is laid out anew as it loads (:func:`_unmerge_hook`), and this hook does the same for the parameter
    schedulers' per-group values (``base_values``, ...), which mmengine's runner would load as saved. Without
    it a scheduler that computes from its base values (cosine annealing) pairs the merged groups with the
    first saved entries, the learning rates of other parameters. It rewrites the checkpoint after it is read
    (``after_load_checkpoint``), before the runner loads the optimizer and the schedulers from it; other
    checkpoints pass through. The recipes list it in ``custom_hooks``, and ``fan_mm.engine.runner.build_runner``
    adds it to a config that does not."""

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved_optimizer, saved_schedulers = checkpoint.get('optimizer'), checkpoint.get('param_schedulers')
        if not saved_optimizer or not saved_schedulers:
            return
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, OptimWrapperDict):
            if not isinstance(saved_schedulers, dict):
                return
            triples = [(w, saved_optimizer.get(name), saved_schedulers.get(name))
                       for name, w in wrapper.optim_wrappers.items()]
        elif isinstance(wrapper, OptimWrapper):
            triples = [(wrapper, saved_optimizer, saved_schedulers)]
        else:  # not built: nothing will be resumed into it
            return
        for wrapper, optimizer_state, schedulers in triples:
            if not optimizer_state or not schedulers or 'param_groups' not in optimizer_state:
                continue
            n_saved = len(optimizer_state['param_groups'])
            sources = saved_group_per_merged_group(wrapper.optimizer, n_saved)
            if sources is None:
                continue
            # mmengine's schedulers step the wrapper's param_groups: the optimizer's, then, where it has more
            # than one group, the wrapper's base settings (the base lr it logs); saved lists end with theirs
            with_base = len(wrapper.param_groups) > len(wrapper.optimizer.param_groups)
            for state in schedulers:
                for key in _SCHEDULER_GROUP_KEYS:
                    values = state.get(key)
                    if isinstance(values, list) and len(values) in (n_saved, n_saved + 1):
                        state[key] = [values[i] for i in sources] + (values[n_saved:] if with_base else [])
            print_log(f'MergedGroupsResumeHook: the state of {len(schedulers)} parameter scheduler(s), saved for '
                      f'{n_saved} groups, laid out for the {len(sources)} merged groups', logger='current')
