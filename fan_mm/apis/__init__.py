from .runner import (build_runner, codebase_of, load_config, prepare_train_config, test,
                     train)

__all__ = ['build_runner', 'codebase_of', 'load_config', 'prepare_train_config', 'test',
           'train']
