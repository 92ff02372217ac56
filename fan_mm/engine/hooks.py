"""Hooks that turn silent failures into loud ones.

* ``NonFiniteLossHook`` stops a training run whose loss, or whose weights (live or EMA), are no longer
  finite, naming the iteration and the loss terms, before a checkpoint of the broken weights is written.
  mmdet's ``CheckInvalidLossHook`` only asserts every 50 iterations ("loss become infinite or NaN!"), so a
  run can save NaN weights first, and it stops mixed-precision runs for steps the loss scaler is about to
  skip.
* ``EmptyPredictionsHook`` says plainly when a detector returned no detection on any image of a
  validation or test set: mmdet's ``CocoMetric`` then returns no numbers at all.

The recipes' runtime base (``configs/_base_/fan_mm_runtime.py``) lists both in ``custom_hooks``, with ``MergedGroupsResumeHook`` of the
optimizer constructor, so that mmdet's and mmseg's own tools run them; ``fan_mm.engine.runner.build_runner``
(behind every fan_mm tool) adds any of them that a config leaves out (``ensure_default_hooks``).
"""
import math
from typing import Optional

import torch
from mmengine.hooks import Hook

from ..registry import register_hook


class NonFiniteLossError(RuntimeError):
    """Training stopped because the loss (or the weights) stopped being finite."""


def _value(x) -> float:
    return float(x.detach().float().mean()) if isinstance(x, torch.Tensor) else float(x)


def _non_finite(state: dict) -> list:
    """Names of the floating-point tensors of a state dict (parameters and buffers such as BatchNorm's running
    statistics) that hold a NaN or an infinity."""
    names = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not names:
        return []
    # one device sync per device (a state may hold tensors on several: a buffer left on the CPU, say)
    checks = [torch.isfinite(state[k]).all() for k in names]
    finite = [bool(c) for c in torch.stack(checks).tolist()] if len({c.device for c in checks}) == 1 else \
        [bool(c) for c in checks]
    return [k for k, ok in zip(names, finite) if not ok]


def _ema_models(runner) -> list:
    """The averaged copies of the model (``BaseAveragedModel``) that hooks such as mmengine's ``EMAHook`` keep.

    They are not part of ``runner.model``, yet ``EMAHook`` saves them as the checkpoint's ``state_dict`` (the
    weights a user deploys) and swaps them in for validation, so they need the same check as the live weights.
    """
    from mmengine.model import BaseAveragedModel
    found = []
    for hook in getattr(runner, 'hooks', ()):
        ema = getattr(hook, 'ema_model', None)
        if isinstance(ema, BaseAveragedModel) and not any(ema is f for f in found):
            found.append(ema)
    return found


def _non_finite_ema(runner) -> list:
    """``_non_finite`` over the averaged copies, named as in the model (without the wrapper's ``module.``)."""
    broken = []
    for ema in _ema_models(runner):
        broken += [k[len('module.'):] if k.startswith('module.') else k for k in _non_finite(ema.state_dict())]
    return broken


def _broken_weights(live: list, ema: list) -> str:
    """Which copy of the weights (live, EMA or both) holds non-finite tensors, with an example of each."""
    parts = []
    if live:
        parts.append(f'{len(live)} weight tensors are no longer finite (e.g. {live[0]}) in the live model')
    if ema:
        what = f'(e.g. {ema[0]}) in the EMA copy of the model (the averaged weights EMAHook saves as the ' \
               'checkpoint\'s state_dict)'
        parts.append(f'{len(ema)} {what}' if live else f'{len(ema)} weight tensors are no longer finite {what}')
    return ' and '.join(parts)


def _position(runner, iteration: int) -> str:
    """'iteration 4 of 6', with the epoch and the iteration within it when the train loop runs by epoch.

    ``iteration`` counts from 1 over the whole run. The epoch is derived from it: ``runner.epoch`` counts the
    epochs completed, which is the current epoch less one during an epoch and in ``after_train_epoch`` (where
    ``CheckpointHook`` saves), but the current epoch itself after validation (where ``save_best`` saves).
    """
    text = f'iteration {iteration} of {runner.max_iters}'
    from mmengine.runner import EpochBasedTrainLoop
    loop = getattr(runner, 'train_loop', None)
    if not isinstance(loop, EpochBasedTrainLoop) or iteration < 1:
        return text
    per_epoch = len(loop.dataloader)
    epoch, step = divmod(iteration - 1, per_epoch)
    return f'{text} (epoch {epoch + 1} of {loop.max_epochs}, iteration {step + 1} of {per_epoch} in the epoch)'


@register_hook
class NonFiniteLossHook(Hook):
    """Stop training when the loss stays non-finite, before the broken weights are saved.

    A non-finite total loss is tolerated for ``patience - 1`` iterations in a row as long as every weight
    is still finite: with mixed precision, an overflow in the forward pass is a step the dynamic loss
    scaler skips, and training goes on unharmed. The run stops with ``NonFiniteLossError`` when

    * the loss has been non-finite for ``patience`` iterations in a row, or
    * a weight or buffer of the model, or of its EMA copy (mmengine's ``EMAHook``), is no longer finite (a
      float32 run that took a NaN step: nothing can recover), or
    * the loss is non-finite in the last iteration (its weights would be saved as the final checkpoint).

    The hook runs before ``CheckpointHook`` in each iteration (priority ``ABOVE_NORMAL``), so no checkpoint
    of that iteration is written. A step can also break the weights while the loss it was computed from was
    still finite (an update that overflows), so every checkpoint is checked before it is written
    (``before_save_checkpoint``), together with the EMA copy that ``EMAHook`` (priority ``NORMAL``, after
    this hook) is about to put into it: no checkpoint ever holds a NaN or an infinity. Reading the loss
    synchronises with the GPU once per iteration, as the logger's own statistics do.

    Args:
        patience: non-finite iterations in a row that stop the run (>= 1).
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, patience: int = 3):
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f'NonFiniteLossHook patience must be an int >= 1, got {patience!r}')
        self.patience = patience
        self._streak = 0
        self._last_finite: Optional[tuple] = None
        self._terms = ''
        self._iteration = 0

    def before_train(self, runner) -> None:
        self._streak = 0
        self._last_finite = None
        self._terms = ''
        self._iteration = 0

    def _stop(self, runner, iteration: int, reason: str, loss: float) -> None:
        before = (f'the last finite loss was {self._last_finite[1]:.4g} at iteration {self._last_finite[0]}'
                  if self._last_finite else 'no iteration had a finite loss')
        raise NonFiniteLossError(
            f'training stopped at {_position(runner, iteration)}: {reason}. Total loss {loss}; '
            f'terms: {self._terms or "(none logged)"}; {before}. No checkpoint of this iteration was saved. A loss '
            f'that grows before it turns non-finite usually means the learning rate is too high for this '
            f'model and batch (see docs/from_scratch.md); work dir: {runner.work_dir}')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs: Optional[dict] = None) -> None:
        # runner.iter counts the iterations done before this one, in both epoch- and iteration-based loops
        iteration = self._iteration = runner.iter + 1
        if not outputs or 'loss' not in outputs:
            return
        loss = _value(outputs['loss'])
        self._terms = ', '.join(f'{k}={_value(v):.4g}' for k, v in outputs.items() if k != 'loss')
        if math.isfinite(loss):
            self._streak = 0
            self._last_finite = (iteration, loss)
            return
        self._streak += 1
        model = getattr(runner.model, 'module', runner.model)
        live, ema = _non_finite(model.state_dict()), _non_finite_ema(runner)
        last = iteration >= runner.max_iters
        if self._streak < self.patience and not live and not ema and not last:
            runner.logger.warning(f'{_position(runner, iteration)}: the loss is {loss} ({self._streak} of '
                                  f'{self.patience} non-finite iterations in a row allowed); the step is skipped '
                                  'by the loss scaler or the run stops')
            return
        reason = (_broken_weights(live, ema) if live or ema else
                  f'the loss has not been finite for {self._streak} iteration(s) in a row')
        self._stop(runner, iteration, reason, loss)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        live = _non_finite(checkpoint.get('state_dict') or {})
        ema = _non_finite_ema(runner)
        if live or ema:
            # The checkpoint's meta names the last iteration it holds, whichever hook saves it and when:
            # runner.iter + 1 is that iteration only inside after_train_iter.
            iteration = (checkpoint.get('meta') or {}).get('iter') or self._iteration or runner.iter
            loss = self._last_finite[1] if self._last_finite and self._streak == 0 else float('nan')
            self._stop(runner, iteration, f'{_broken_weights(live, ema)} after a step whose loss was finite', loss)


def _num_instances(sample) -> Optional[int]:
    pred = getattr(sample, 'pred_instances', None)
    return None if pred is None else len(pred)


@register_hook
class EmptyPredictionsHook(Hook):
    """Warn, with the reason, when a detector predicts nothing on a whole validation / test set.

    Segmentation outputs always have a prediction per pixel and are not counted. The count of images and
    detections of the last epoch is kept in the message hub (``fan_mm/images``, ``fan_mm/detections``)
    for callers such as the robustness evaluation.
    """

    priority = 'NORMAL'

    def __init__(self):
        self._images = 0
        self._detections = 0
        self._counted = False

    def _reset(self, runner=None, *args, **kwargs) -> None:
        self._images = self._detections = 0
        self._counted = False

    before_val_epoch = before_test_epoch = _reset

    def _count(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        for sample in outputs or ():
            n = _num_instances(sample)
            if n is None:
                return
            self._counted = True
            self._images += 1
            self._detections += n

    after_val_iter = after_test_iter = _count

    def _report(self, runner, metrics=None) -> None:
        from mmengine.dist import all_reduce
        counts = torch.tensor([self._images, self._detections, int(self._counted)], dtype=torch.float64)
        all_reduce(counts)  # a no-op without a process group
        images, detections, counted = (int(v) for v in counts.tolist())
        if not counted:
            return
        runner.message_hub.update_info('fan_mm/images', images)
        runner.message_hub.update_info('fan_mm/detections', detections)
        if images and not detections:
            runner.logger.warning(
                f'the model returned no detection on any of the {images} images, so every box / mask metric is '
                'empty or zero. Usual causes: a checkpoint that does not fit the model (see the checkpoint '
                'check above), a model that was not trained, or a training run that diverged.')

    after_val_epoch = after_test_epoch = _report


# MergedGroupsResumeHook (fan_mm.engine.optim_constructor): resuming an older checkpoint into merged groups
DEFAULT_HOOKS = ('NonFiniteLossHook', 'EmptyPredictionsHook', 'MergedGroupsResumeHook')


def ensure_default_hooks(cfg) -> None:
    """Append the hooks of ``DEFAULT_HOOKS`` to ``cfg.custom_hooks`` unless the config lists them."""
    hooks = list(cfg.get('custom_hooks') or [])
    present = {h.get('type') if isinstance(h, dict) else type(h).__name__ for h in hooks}
    for name in DEFAULT_HOOKS:
        if name not in present:
            hooks.append(dict(type=name))
    cfg.custom_hooks = hooks


@register_hook
class ProgressBarHook(Hook):
    """A tqdm progress bar over the training iterations (with the loss) and over each val / test epoch.

    For runs whose log goes to a file rather than the console (``tools/demo.py``): the bars write to
    ``stream`` (default: the original standard error, which survives a redirected ``sys.stderr``).

    Args:
        desc: prefix of every bar, e.g. 'train'.
        stream: file object the bars are written to.
    """

    priority = 'LOW'

    def __init__(self, desc: str = '', stream=None):
        import sys
        self.desc = desc
        self.stream = stream or sys.__stderr__
        self._bar = None

    def _open(self, total: int, what: str, initial: int = 0) -> None:
        from tqdm import tqdm
        self._close()
        label = f'{self.desc} {what}'.strip()
        self._bar = tqdm(total=total, initial=initial, desc=label, file=self.stream, dynamic_ncols=True,
                         leave=True, unit='it' if what == 'train' else 'img')

    def _close(self, *args, **kwargs) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def before_train(self, runner) -> None:
        self._open(runner.max_iters, 'train', initial=runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self._bar is None:
            return
        if outputs and 'loss' in outputs:
            self._bar.set_postfix(loss=f'{_value(outputs["loss"]):.3f}', refresh=False)
        self._bar.update(1)

    def _eval_start(self, runner, loop_name: str, what: str) -> None:
        self._train_bar, self._bar = self._bar, None
        loop = getattr(runner, loop_name)
        self._open(len(loop.dataloader.dataset), what)

    def before_val_epoch(self, runner) -> None:
        self._eval_start(runner, 'val_loop', 'val')

    def before_test_epoch(self, runner) -> None:
        self._eval_start(runner, 'test_loop', 'test')

    def _eval_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self._bar is not None:
            self._bar.update(len(outputs) if outputs is not None else 1)

    after_val_iter = after_test_iter = _eval_iter

    def _eval_end(self, runner, metrics=None) -> None:
        self._close()
        self._bar, self._train_bar = getattr(self, '_train_bar', None), None

    after_val_epoch = after_test_epoch = _eval_end
    after_train = after_run = _close
