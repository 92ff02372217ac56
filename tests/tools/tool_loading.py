"""The scripts of ``tools/`` loaded as modules, so that tests call their ``main(argv)`` in this process."""
import importlib.util
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / 'tools'


def load_tool(name: str):
    """``tools/<name>.py`` as a module, e.g. ``load_tool('analysis/benchmark_backbone')``."""
    spec = importlib.util.spec_from_file_location(f"tool_{name.replace('/', '_')}", TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
