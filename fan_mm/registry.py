"""Registering fan_mm classes into mmdet's and mmseg's registries.

One class goes into both codebases (configs then use the bare ``type='FANHybrid'``, also
inside ``mmdet::``/``mmseg::`` bases that carry their own scope). Each codebase is
optional: with only one of them installed, the other is skipped.
"""
import importlib

CODEBASES = ('mmdet', 'mmseg')


def _registries(kind):
    found = []
    for codebase in CODEBASES:
        try:
            module = importlib.import_module(f'{codebase}.registry')
        except ImportError:
            continue
        found.append(getattr(module, kind))
    return found


def _register(kind, cls):
    for registry in _registries(kind):
        # ``module_dict`` rather than ``get``: ``get`` imports the whole codebase (all of
        # mmdet.models / mmseg.models, ~10 s) just to look a name up.
        if registry.module_dict.get(cls.__name__) is not cls:
            registry.register_module(module=cls, force=True)
    return cls


def register_model(cls):
    """Class decorator: add ``cls`` to mmdet's and mmseg's ``MODELS``."""
    return _register('MODELS', cls)


def register_transform(cls):
    """Class decorator: add ``cls`` to mmdet's and mmseg's ``TRANSFORMS``."""
    return _register('TRANSFORMS', cls)


def register_metric(cls):
    """Class decorator: add ``cls`` to mmdet's and mmseg's ``METRICS``."""
    return _register('METRICS', cls)


def register_hook(cls):
    """Class decorator: add ``cls`` to mmdet's and mmseg's ``HOOKS``."""
    return _register('HOOKS', cls)



def register_dataset(codebase: str):
    """Class decorator factory: add the class to ``codebase``'s ``DATASETS`` (a dataset serves one task)."""
    if codebase not in CODEBASES:
        raise ValueError(f'codebase={codebase!r}: use one of {CODEBASES}')

    def register(cls):
        try:
            registry = importlib.import_module(f'{codebase}.registry').DATASETS
        except ImportError:
            return cls
        if registry.module_dict.get(cls.__name__) is not cls:
            registry.register_module(module=cls, force=True)
        return cls
    return register
