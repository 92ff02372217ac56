"""NoDecayOptimWrapperConstructor's merged parameter groups: the same updates as mmengine's one group per
parameter, far fewer groups, and checkpoints of either layout load."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

pytest.importorskip('mmengine')
from mmengine.optim import build_optim_wrapper  # noqa: E402

import fan_mm.engine  # noqa: E402,F401  (registers the constructor)
from fan_mm.engine.optim_constructor import merge_param_groups  # noqa: E402


class _Net(nn.Module):
    # no parameter whose true gradient is zero (a conv bias before a BatchNorm, a constant the norm removes):
    # Adam turns the rounding noise of such a gradient into full-size steps, and two kernels would part ways
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.GELU(),
                                      nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.backbone.pos_embed = nn.Parameter(torch.randn(1, 8, 1, 1) * 0.02)
        self.decode_head = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8), nn.Conv2d(8, 2, 1))

    def forward(self, x):
        return self.decode_head(F.gelu(self.backbone(x) + self.backbone.pos_embed))


def _wrapper(model, merge, fused=False):
    return build_optim_wrapper(model, dict(
        constructor='NoDecayOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.1, fused=fused),
        paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)}, no_decay_keys=['pos_embed'],
                           merge_groups=merge)))


def _steps(model, wrapper, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(2, 3, 8, 8, generator=g)
        loss = model(x).square().mean()
        wrapper.update_params(loss)


@pytest.mark.parametrize('fused', [False, True])
def test_merged_groups_update_every_parameter_as_one_group_per_parameter(fused):
    torch.manual_seed(0)
    model = _Net()
    twin = copy.deepcopy(model)
    merged, per_param = _wrapper(model, True, fused), _wrapper(twin, False, fused)
    n_params = len(list(model.parameters()))
    assert len(per_param.optimizer.param_groups) == n_params
    # backbone decayed, backbone not decayed (norms, pos_embed), head decayed, head norms: lr x10
    settings = sorted((g['lr'], g['weight_decay'], len(g['params'])) for g in merged.optimizer.param_groups)
    assert settings == [(pytest.approx(1e-2), 0.0, 5), (pytest.approx(1e-2), pytest.approx(0.1), 2),
                        (pytest.approx(1e-1), 0.0, 2), (pytest.approx(1e-1), pytest.approx(0.1), 3)]
    assert all(g['fused'] is fused for g in merged.optimizer.param_groups)
    _steps(model, merged, 3)
    _steps(twin, per_param, 3)
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(p, q), name


def test_the_recipes_fused_adamw_follows_mmengines_foreach_layout_to_float_rounding():
    """What the recipes changed, both at once: merged groups with fused AdamW against one group per parameter
    with foreach, 20 steps (the docs quote the agreement)."""
    torch.manual_seed(0)
    model = _Net()
    twin = copy.deepcopy(model)
    _steps(model, _wrapper(model, True, fused=True), 20)
    _steps(twin, _wrapper(twin, False, fused=False), 20)
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)
    assert not all(torch.equal(p, q) for p, q in zip(model.parameters(), twin.parameters()))  # two kernels


def test_checkpoint_with_one_group_per_parameter_resumes_into_merged_groups():
    torch.manual_seed(0)
    model = _Net()
    twin = copy.deepcopy(model)
    old = _wrapper(twin, False)
    _steps(twin, old, 2)
    saved, saved_weights = copy.deepcopy(old.state_dict()), copy.deepcopy(twin.state_dict())
    # the run goes on as it was ...
    _steps(twin, old, 2, seed=2)
    # ... and as a resumed run with the merged layout: weights and optimizer state from the checkpoint
    resumed_model = copy.deepcopy(model)
    resumed_model.load_state_dict(saved_weights)
    new = _wrapper(resumed_model, True)
    new.load_state_dict(saved)
    assert len(new.optimizer.param_groups) == 4
    _steps(resumed_model, new, 2, seed=2)
    for (name, p), q in zip(resumed_model.named_parameters(), twin.parameters()):
        assert torch.equal(p, q), name
    # a merged checkpoint loads into a merged optimizer as torch does it
    again = _wrapper(copy.deepcopy(resumed_model), True)
    again.load_state_dict(copy.deepcopy(new.state_dict()))
    assert again.optimizer.state_dict()['state'].keys() == new.optimizer.state_dict()['state'].keys()


def _train_with_cosine(work_dir, merge, resume_from=None, hooks=()):
    """A real mmengine Runner: _Net on random images for 6 iterations under cosine annealing with restarts
    every 2 (where mmengine's scheduler reads its base values; the head's lr is 10x: they differ by group), a
    checkpoint every 2; ``resume_from``: resume from that checkpoint."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Model(BaseModel):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = _Net()

        def forward(self, inputs, mode='tensor'):
            out = self.net(inputs)
            return dict(loss=out.square().mean()) if mode == 'loss' else out

    g = torch.Generator().manual_seed(3)
    data = [dict(inputs=torch.randn(3, 8, 8, generator=g)) for _ in range(6)]
    runner = Runner(
        model=Model(), work_dir=str(work_dir), experiment_name=f'{work_dir.name}_{merge}',
        train_dataloader=dict(dataset=data, sampler=dict(type='InfiniteSampler', shuffle=False), batch_size=2,
                              collate_fn=dict(type='default_collate'), num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=6),
        optim_wrapper=dict(constructor='NoDecayOptimWrapperConstructor',
                           optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.1),
                           paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)}, merge_groups=merge)),
        param_scheduler=dict(type='CosineAnnealingLR', T_max=2, by_epoch=False, eta_min=1e-4),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False), logger=None),
        custom_hooks=list(hooks), load_from=resume_from, resume=resume_from is not None)
    runner.train()
    return runner


@pytest.mark.parametrize('with_hook', [True, False])
def test_a_run_resumed_into_merged_groups_keeps_each_groups_schedule(tmp_path, with_hook):
    """Resuming a checkpoint of one group per parameter into merged groups, through mmengine's Runner: with
    MergedGroupsResumeHook the schedulers' base values are laid out as the groups and the run ends where the
    uninterrupted one does; without it cosine annealing gives the head's groups the backbone's base lr."""
    from fan_mm.engine import MergedGroupsResumeHook
    old = _train_with_cosine(tmp_path / 'old', merge=False)
    resumed = _train_with_cosine(tmp_path / 'new', merge=True, resume_from=str(tmp_path / 'old' / 'iter_2.pth'),
                                 hooks=[MergedGroupsResumeHook()] if with_hook else [])
    groups = resumed.optim_wrapper.param_groups  # the optimizer's 4, then the wrapper's base settings
    assert len(resumed.optim_wrapper.optimizer.param_groups) == 4 and len(groups) == 5
    scheduler, = resumed.param_schedulers
    same = [torch.equal(p, q) for p, q in zip(resumed.model.parameters(), old.model.parameters())]
    if with_hook:
        assert scheduler.base_values == [g['initial_lr'] for g in groups] == [1e-2, 1e-2, 0.1, 0.1, 1e-2]
        assert all(same)
    else:
        assert len(scheduler.base_values) == 13 and scheduler.base_values[:4] == [1e-2] * 4  # backbone's
        assert not all(same)


@pytest.mark.parametrize('merge_old', [False, True])
def test_a_foreach_checkpoint_resumes_fused_with_the_fp16_loss_scaler(merge_old):
    """The implementation is the config's: a checkpoint of a foreach optimizer (fan_mm's recipes before they
    were fused) loads into a fused one that stays fused, so the loss scaler's step (which hands a fused
    optimizer its scale and inf flag) keeps working."""
    torch.manual_seed(0)
    model = _Net()
    old = _wrapper(copy.deepcopy(model), merge_old, fused=False)
    _steps(model, old, 1)
    new = _wrapper(model, True, fused=True)
    new.load_state_dict(copy.deepcopy(old.state_dict()))
    assert all(g['fused'] is True for g in new.optimizer.param_groups)
    scaler = torch.amp.GradScaler('cpu')
    scaler.scale(model(torch.randn(2, 3, 8, 8)).square().mean()).backward()
    scaler.step(new.optimizer)
    scaler.update()


def test_unmergeable_checkpoint_names_the_way_out():
    torch.manual_seed(0)
    model = _Net()
    old = _wrapper(copy.deepcopy(model), False)
    state = copy.deepcopy(old.state_dict())
    state['param_groups'][0]['lr'] = 123.  # its group no longer equals the others it would merge with
    with pytest.raises(ValueError, match='merge_groups=False'):
        _wrapper(model, True).load_state_dict(state)


def test_merge_param_groups_fills_left_out_settings_from_the_optimizer_config():
    a, b, c = (nn.Parameter(torch.zeros(1)) for _ in range(3))
    groups = [{'params': [a]}, {'params': [b], 'lr': 0.1}, {'params': [c], 'lr': 0.2}]
    merged, order = merge_param_groups(groups, dict(type='AdamW', lr=0.1, weight_decay=0.05))
    assert [len(g['params']) for g in merged] == [2, 1]
    assert merged[0]['lr'] == 0.1 and merged[0]['weight_decay'] == 0.05 and 'type' not in merged[0]
    assert order == [0, 1, 2]
    merged, order = merge_param_groups([groups[2], groups[0], groups[1]], dict(lr=0.1))
    assert [g['lr'] for g in merged] == [0.2, 0.1] and order == [0, 1, 2]
    merged, order = merge_param_groups([groups[0], groups[2], groups[1]], dict(lr=0.1))
    assert order == [0, 2, 1]  # merged parameter j was parameter order[j] of the unmerged groups
