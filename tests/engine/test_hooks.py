"""NonFiniteLossHook on its own: the loss streak, the weight and buffer check, the check before a checkpoint."""
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip('mmengine')

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
