# fan_mm's part of every recipe's runtime, next to mmdet's / mmseg's default_runtime.py.
# The imports register fan_mm's backbones, optimizer constructor and hooks in mmdet's and mmseg's registries.
# The hooks (fan_mm/engine/hooks.py, fan_mm/engine/optim_constructor.py) stop a run whose loss or weights stop
# being finite before a checkpoint of them is written, warn when a detector predicts nothing on a whole val /
# test set, and resume a checkpoint saved with one optimizer group per parameter into the merged groups. They
# are listed here so that mmdet's and mmseg's own tools/train.py and tools/test.py run them too; fan_mm's tools
# add any of them that a config leaves out (a child config's custom_hooks replaces this list).
custom_imports = dict(imports=['fan_mm.models', 'fan_mm.engine'], allow_failed_imports=False)
custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='EmptyPredictionsHook'),
    dict(type='MergedGroupsResumeHook'),
]
