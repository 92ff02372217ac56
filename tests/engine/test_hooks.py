"""NonFiniteLossHook: the loss streak, the weight and buffer check (live and EMA), the check before a checkpoint,
and the iteration (and epoch) its message names."""
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip('mmengine')

from mmengine.hooks import Hook  # noqa: E402

from fan_mm.engine.hooks import NonFiniteLossError, NonFiniteLossHook  # noqa: E402


class _Logger:
    def __init__(self):
        self.warnings = []

    def warning(self, message):
        self.warnings.append(message)


def _runner(model, iteration=4, max_iters=10):
    return SimpleNamespace(model=model, iter=iteration, max_iters=max_iters, work_dir='work', logger=_Logger())


def test_a_streak_shorter_than_patience_is_tolerated_then_stops_naming_the_terms():
    hook, model = NonFiniteLossHook(patience=2), torch.nn.BatchNorm2d(3)
    runner = _runner(model)
    hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(1.5), loss_cls=torch.tensor(1.0)))
    nan = torch.tensor(float('nan'))
    hook.after_train_iter(runner, 0, outputs=dict(loss=nan, loss_cls=nan))
    assert len(runner.logger.warnings) == 1
    expected = r'not been finite for 2 iteration\(s\).*Total loss inf; terms: loss_cls=1;.*1.5 at iteration 5'
    with pytest.raises(NonFiniteLossError, match=expected):
        hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(float('inf')), loss_cls=torch.tensor(1.0)))


def test_a_non_finite_buffer_stops_at_once():
    hook, model = NonFiniteLossHook(patience=3), torch.nn.BatchNorm2d(3)
    model.running_var[1] = float('inf')  # a buffer, not a parameter
    with pytest.raises(NonFiniteLossError, match='1 weight tensors are no longer finite \\(e.g. running_var\\)'):
        hook.after_train_iter(_runner(model), 0, outputs=dict(loss=torch.tensor(float('nan'))))


def test_no_checkpoint_with_non_finite_weights_is_written_even_after_a_finite_loss():
    hook, model = NonFiniteLossHook(), torch.nn.Linear(2, 2)
    runner = _runner(model)
    hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(0.7), loss_bbox=torch.tensor(0.2)))
    hook.before_save_checkpoint(runner, dict(state_dict=model.state_dict()))  # finite: saved as usual
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state['weight'][0, 0] = float('nan')
    with pytest.raises(NonFiniteLossError, match='iteration 5 of 10: 1 weight tensors .*weight.*loss_bbox=0.2'):
        hook.before_save_checkpoint(runner, dict(state_dict=state))


# A real mmengine Runner on a two-weight model: the iteration numbering and the EMA copy are the Runner's and
# EMAHook's own, which a stand-in runner would only restate.

def _train(tmp_path, train_cfg, checkpoint, injected=None, custom_hooks=(), nan_loss_at=()):
    """Train a linear model on 2 samples; ``injected`` (a hook) breaks weights at a chosen iteration, and the
    loss is NaN in the (1-based) iterations of ``nan_loss_at`` (through a constant, so the gradient and the
    weights stay finite)."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, inputs, offset=None, mode='tensor'):
            out = self.linear(inputs)
            return dict(loss=out.pow(2).mean() + offset.sum()) if mode == 'loss' else out

    class Offset(Hook):  # the loss is NaN in the listed iterations of the run
        priority = 'HIGHEST'

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            data_batch['offset'].fill_(float('nan') if runner.iter + 1 in nan_loss_at else 0.)

    data = [dict(inputs=torch.ones(2), offset=torch.tensor(0.)) for _ in range(2)]
    # an iteration-based loop pauses 2 s each time a finite sampler runs out
    sampler = 'DefaultSampler' if train_cfg['by_epoch'] else 'InfiniteSampler'
    runner = Runner(
        model=Toy(), work_dir=str(tmp_path), experiment_name=tmp_path.name,
        train_dataloader=dict(dataset=data, sampler=dict(type=sampler, shuffle=False), batch_size=1,
                              collate_fn=dict(type='default_collate'), num_workers=0),
        train_cfg=train_cfg, optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', **checkpoint), logger=None),
        custom_hooks=[NonFiniteLossHook(), Offset(), *([injected] if injected else []), *custom_hooks])
    runner.train()
    return runner


class _BreakAt(Hook):
    """Sets a NaN into the live weights (``ema=False``) or into EMAHook's averaged copy at iteration ``at``,
    after the step and the EMA update (priority LOW), before CheckpointHook (VERY_LOW)."""
    priority = 'LOW'

    def __init__(self, at, ema=False):
        self.at, self.ema = at, ema

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            model = next(h.ema_model.module for h in runner.hooks if h.__class__.__name__ == 'EMAHook') \
                if self.ema else runner.model
            with torch.no_grad():
                model.linear.weight[0, 0] = float('nan')


def test_an_epoch_checkpoint_names_its_own_iteration_and_epoch(tmp_path):
    # CheckpointHook saves at the end of epoch 2, after its last iteration (4) was counted.
    with pytest.raises(NonFiniteLossError, match=r'at iteration 4 of 6 \(epoch 2 of 3, iteration 2 of 2 in the '
                                                 r'epoch\): 1 weight tensors .*linear.weight\) in the live model'):
        _train(tmp_path, dict(by_epoch=True, max_epochs=3), dict(interval=1), _BreakAt(4))
    assert (tmp_path / 'epoch_1.pth').exists() and not (tmp_path / 'epoch_2.pth').exists()


def test_a_non_finite_loss_in_an_epoch_loop_names_the_epoch(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r'at iteration 3 of 4 \(epoch 2 of 2, iteration 1 of 2 in the '
                                                 r'epoch\): the loss has not been finite for 3'):
        _train(tmp_path, dict(by_epoch=True, max_epochs=2), dict(interval=1), nan_loss_at=(1, 2, 3))


def test_an_iteration_checkpoint_names_its_own_iteration(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r'at iteration 3 of 4: 1 weight tensors .*in the live model'):
        _train(tmp_path, dict(by_epoch=False, max_iters=4), dict(interval=3, by_epoch=False), _BreakAt(3))


def test_no_checkpoint_is_written_with_non_finite_ema_weights(tmp_path):
    # The live weights stay finite: only EMAHook's copy, which it saves as the state_dict, is broken.
    with pytest.raises(NonFiniteLossError, match=r'at iteration 2 of 4 \(epoch 1 of 2.*: 1 weight tensors are no '
                                                 r'longer finite \(e.g. linear.weight\) in the EMA copy'):
        _train(tmp_path, dict(by_epoch=True, max_epochs=2), dict(interval=1), _BreakAt(2, ema=True),
               custom_hooks=[dict(type='EMAHook')])
    assert not list(tmp_path.glob('epoch_*.pth'))


def test_a_non_finite_loss_with_non_finite_ema_weights_stops_at_once(tmp_path):
    # patience 3 would tolerate the NaN loss of iteration 2 if every weight were finite; the EMA copy is not
    with pytest.raises(NonFiniteLossError, match=r'at iteration 2 of 4: .*\(e.g. linear.weight\) in the EMA copy'):
        _train(tmp_path, dict(by_epoch=False, max_iters=4), dict(interval=100, by_epoch=False),
               _BreakAt(1, ema=True), custom_hooks=[dict(type='EMAHook')], nan_loss_at=(2,))
