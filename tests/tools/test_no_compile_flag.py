"""--no-compile reaches the jobs of tools/train.py, tools/test.py and tools/test_robustness.py as eager=True."""
import pytest

from tool_loading import load_tool


@pytest.mark.parametrize('flag, eager', [([], False), (['--no-compile'], True)])
def test_no_compile_reaches_the_job(monkeypatch, flag, eager):
    seen = {}

    def record(name):
        def job(*args, **kwargs):
            seen[name] = kwargs['eager']
            return {}
        return job
    train = load_tool('train')
    monkeypatch.setattr(train, 'train', record('train'))
    monkeypatch.setattr(train, 'release_process_group', lambda: None)
    train.main(['cfg.py', *flag])
    test = load_tool('test')
    monkeypatch.setattr(test, 'test', record('test'))
    monkeypatch.setattr(test, 'release_process_group', lambda: None)
    test.main(['cfg.py', 'ckpt.pth', *flag])
    import fan_mm.robustness.evaluation as evaluation
    monkeypatch.setattr(evaluation, 'evaluate_robustness', record('test_robustness'))
    robustness = load_tool('test_robustness')
    monkeypatch.setattr(robustness, 'release_process_group', lambda: None)
    robustness.main(['cfg.py', 'ckpt.pth', '--suite', 'coco-c', '--on-the-fly', '--work-dir', 'w', *flag])
    assert seen == {'train': eager, 'test': eager, 'test_robustness': eager}
