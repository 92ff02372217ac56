"""What ``tools/train.py`` and ``tools/test.py`` do, for mmdet and mmseg configs alike.

The arguments and their semantics are mmdet 3.3's (``--work-dir``, ``--amp``,
``--auto-scale-lr``, ``--resume [CKPT]``, ``--cfg-options``, ``--launcher``; ``--out``,
``--show``, ``--show-dir``, ``--tta`` for testing). The codebase is read from the config's
``default_scope``; everything else is mmengine's Runner.
"""
import os
import os.path as osp
from copy import deepcopy
from typing import List, Optional, Sequence

from mmengine.config import Config, ConfigDict

from ..registry import CODEBASES
from .checkpoint_compat import install_mmengine_checkpoint_loader



def codebase_of(cfg: Config) -> str:
    """'mmdet' or 'mmseg', from the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in CODEBASES:
        raise ValueError(
            f'{cfg.filename}: default_scope={scope!r}; fan_mm tools run mmdet or mmseg configs '
            "(inherit their default_runtime, or set default_scope='mmdet'/'mmseg')")
    return scope


def load_config(config: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None, launcher: str = 'none', eager: bool = False) -> Config:
    """Read a config, apply ``--cfg-options`` and pick the work dir like mmdet's tools.

    Work dir priority: argument > ``work_dir`` in the file > ``./work_dirs/<config name>``.
    ``eager=True`` (the tools' ``--no-compile``) turns off the backbone's ``compile_blocks``, the fast
    path the fan_mm model configs switch on for GPU runs.
    """
    from ..models.builder import disable_backbone_compile, load_config as read_config
    install_mmengine_checkpoint_loader()
    cfg = read_config(config, cfg_options)  # the one reader: a path or mmdet::/mmseg:: name, options merged
    cfg.launcher = launcher
    if eager:
        disable_backbone_compile(cfg)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    codebase_of(cfg)
    return cfg


def setup_cpu_distributed(cfg: Config) -> None:
    """Let a distributed launch (``--launcher pytorch``) run on machines without a GPU (CI, CPU
    clusters, debugging): a gloo process group and a CPU DDP wrapper. GPU and non-distributed runs
    are untouched; so is a process that already has a process group.

    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` and its DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``; both fail without CUDA. So the process group is created here
    (mmengine skips ``init_dist`` when one exists) and DDP is built with ``device_ids=None``
    (kept from the config's ``model_wrapper_cfg`` where it has one). ``sync_bn`` is dropped
    with a warning (``_drop_sync_bn_on_cpu``).
    """
    import torch
    import torch.distributed as dist
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available() or dist.is_initialized():
        return
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
    if backend != 'gloo':
        raise RuntimeError(f'--launcher {cfg.launcher} without a GPU needs the gloo backend, the config asks for '
                           f'{backend!r}: add --cfg-options env_cfg.dist_cfg.backend=gloo')
    dist.init_process_group(backend='gloo')
    _drop_sync_bn_on_cpu(cfg)
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        wrapper = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                       find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper = dict(wrapper)
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def _drop_sync_bn_on_cpu(cfg: Config) -> None:
    """torch's SyncBatchNorm has no CPU kernels: a distributed CPU run keeps plain BatchNorm (logged)."""
    if cfg.get('sync_bn') is not None:
        from mmengine.logging import print_log
        print_log(f'sync_bn={cfg.sync_bn!r} ignored: SyncBatchNorm needs GPUs, this distributed run is on CPU '
                  '(BatchNorm statistics stay per process)', logger='current', level=30)
        cfg.sync_bn = None


def build_runner(cfg: Config):
    """mmengine's Runner for ``cfg``, with the hooks that stop or flag failed runs (``fan_mm.engine``)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from .hooks import ensure_default_hooks
    setup_cpu_distributed(cfg)
    ensure_default_hooks(cfg)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    write_test_metrics_on_main_process_only(runner)
    return runner


def write_test_metrics_on_main_process_only(runner) -> None:
    """Only the main process writes the test metrics JSON (``<timestamp>.json`` in the run's log dir).

    mmengine 0.10.7's ``LoggerHook.after_test_epoch`` writes it on every rank, into the same file; in a
    2-process ``tools/dist_test.sh`` run here two ranks wrote at once and left a file of one JSON object
    plus the tail of the other. The other ranks log nothing at INFO level anyway, so their hook does
    nothing after a test epoch.
    """
    from mmengine.dist import is_main_process
    from mmengine.hooks import LoggerHook
    if is_main_process():
        return
    for hook in runner.hooks:
        if isinstance(hook, LoggerHook):
            hook.after_test_epoch = lambda runner, metrics=None: None


class CheckpointMismatchError(RuntimeError):
    """A checkpoint given for testing does not fit the model built from the config."""


def unused_by_backbone(model, keys: Sequence[str]) -> List[str]:
    """The ``keys`` (a checkpoint's, mm naming) that ``model``'s backbone declares it does not use: a
    classifier, parts pruned because no output needs them (FAN's class-token path, which fan_mm checkpoints
    written before 2026-12-05 still hold; see ``DenseBackbone.unused_prefixes``)."""
    backbone = getattr(getattr(model, 'module', model), 'backbone', None)
    if not hasattr(backbone, 'unused_prefixes'):
        return []
    prefixes = tuple('backbone.' + p for p in backbone.unused_prefixes())
    return [k for k in keys if k.startswith(prefixes)] if prefixes else []


def check_resume_checkpoint(model, checkpoint: str) -> None:
    """Refuse, in plain words, to resume from a checkpoint holding weights the backbone no longer has.

    Its optimizer state counts those parameters, so mmengine's resume would stop with torch's "loaded state
    dict contains a parameter group that doesn't match the size of optimizer's group"."""
    from ..models.checkpoint_utils import load_state_dict_file
    model = getattr(model, 'module', model)
    stale = unused_by_backbone(model, [k for k in load_state_dict_file(checkpoint) if k not in model.state_dict()])
    if stale:
        raise CheckpointMismatchError(
            f'--resume: checkpoint {checkpoint} holds {len(stale)} weights this backbone does not have any more '
            f'(e.g. {stale[0]}: parts no output reads, pruned since it was written), and its optimizer state '
            f'counts them, so the run cannot continue from it. Start a new run from its weights instead: '
            f'--cfg-options load_from={checkpoint}')


def check_checkpoint(model, checkpoint: str, allow_partial: bool = False) -> dict:
    """Compare the weights in ``checkpoint`` with ``model``'s; raise unless they fit or ``allow_partial``.

    mmengine loads test checkpoints with ``strict=False``: weights missing from the file keep their random
    initialisation and the file's other weights are dropped, with a log line that is easy to miss, so a
    file of another model evaluates random weights and "works". This check reads the file first and
    refuses it, in plain words, unless every weight of the model is in the file with its shape and the
    file has nothing the model lacks. ``allow_partial=True`` (``--allow-partial-checkpoint``) lets a
    deliberate partial load through with a warning. Returns a report for the results files.
    """
    from mmengine.logging import print_log

    from ..models.checkpoint_utils import compare_state_dicts, describe_mismatch, load_state_dict_file
    model = getattr(model, 'module', model)
    found = load_state_dict_file(checkpoint)
    expected = model.state_dict()
    missing, unexpected, mismatched = compare_state_dicts(expected, found)
    # weights the backbone declares it does not use are not a misfit: mmengine drops them, and the model
    # computes what it would with them
    ignored = unused_by_backbone(model, unexpected)
    ignored_set = set(ignored)
    unexpected = [k for k in unexpected if k not in ignored_set]
    report = dict(file=osp.abspath(checkpoint), weights_in_file=len(found), weights_in_model=len(expected),
                  missing=len(missing), unexpected=len(unexpected), wrong_shape=len(mismatched),
                  unused_by_backbone=len(ignored), fits=not (missing or unexpected or mismatched),
                  allow_partial=allow_partial, summary=describe_mismatch(missing, unexpected, mismatched))
    if ignored:
        print_log(f'checkpoint {checkpoint}: {len(ignored)} weights the backbone does not use by design are '
                  f'ignored ({ignored[0]}{", ..." if len(ignored) > 1 else ""})', logger='current', level=20)
    if report['fits']:
        return report
    message = f'checkpoint {checkpoint} does not fit the model of this config: {report["summary"]}.'
    if (hasattr(model, 'backbone') and not any(k.startswith('backbone.') for k in found)
            and any(k.startswith('backbone.') for k in expected)):
        message += (' The file has no "backbone." weights: it looks like an ImageNet / backbone checkpoint, '
                    'which belongs in the backbone\'s init_cfg (or convert it with tools/convert_checkpoint.py), '
                    'not in a test run.')
    if not allow_partial:
        raise CheckpointMismatchError(
            message + ' The missing weights would be evaluated with their random initialisation. If a partial '
            'load is what you want, pass --allow-partial-checkpoint.')
    print_log(message + ' Loading it anyway (--allow-partial-checkpoint).', logger='current', level=30)
    return report


def _limit_dynamo_recompiles():
    # As mmdet's tools: DYNAMO_CACHE_SIZE_LIMIT in the environment sets dynamo's recompile limit (fan_mm's
    # compiled blocks otherwise raise it to MIN_RECOMPILE_LIMIT; see fan_mm.layers.compile).
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    setup_cache_size_limit_of_dynamo()


def prepare_train_config(cfg: Config, amp: bool = False, auto_scale_lr: bool = False,
                         resume: Optional[str] = None) -> Config:
    """Apply ``--amp``, ``--auto-scale-lr`` and ``--resume`` as mmdet's train.py does.

    ``resume='auto'`` resumes from the latest checkpoint in the work dir; a path resumes
    from that file (model, optimizer, scheduler, iteration and message hub).
    """
    if amp:
        optim_wrapper = cfg.optim_wrapper
        if optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            pass
        elif optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
            optim_wrapper.type = 'AmpOptimWrapper'
            optim_wrapper.setdefault('loss_scale', 'dynamic')
        else:
            raise ValueError(f'--amp: cannot switch optim_wrapper type '
                             f'{optim_wrapper.type!r} to AmpOptimWrapper')
    if auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError('--auto-scale-lr: the config has no '
                             'auto_scale_lr=dict(base_batch_size=...)')
        cfg.auto_scale_lr.enable = True
    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        if not osp.isfile(resume):
            from ..models.checkpoint_utils import CheckpointError
            raise CheckpointError(f'--resume checkpoint file not found: {resume}')
        cfg.resume = True
        cfg.load_from = resume
    return cfg


def train(config: str, work_dir: Optional[str] = None, amp: bool = False,
          auto_scale_lr: bool = False, resume: Optional[str] = None,
          cfg_options: Optional[dict] = None, launcher: str = 'none', eager: bool = False):
    """Train from a config file; returns the trained model (``runner.train()``). ``eager``: see
    ``load_config``."""
    cfg = load_config(config, cfg_options, work_dir, launcher, eager)
    prepare_train_config(cfg, amp, auto_scale_lr, resume)
    if codebase_of(cfg) == 'mmdet':
        _limit_dynamo_recompiles()
    runner = build_runner(cfg)
    if cfg.get('resume'):
        from mmengine.runner import find_latest_checkpoint
        path = cfg.get('load_from') or find_latest_checkpoint(runner.work_dir)  # --resume PATH, or auto
        if path:
            check_resume_checkpoint(runner.model, path)
    return runner.train()


def _enable_visualization(cfg: Config, show: bool, show_dir: Optional[str],
                          wait_time: float):
    if codebase_of(cfg) == 'mmdet':
        from mmdet.engine.hooks.utils import trigger_visualization_hook

        class _Args:  # the helper reads these attributes off mmdet's argparse namespace
            pass
        args = _Args()
        args.show, args.show_dir, args.wait_time = show, show_dir, wait_time
        return trigger_visualization_hook(cfg, args)
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError('--show/--show-dir need default_hooks.visualization in the config')
    hook['draw'] = True
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if show_dir:
        cfg.visualizer['save_dir'] = show_dir
    return cfg


def _enable_tta(cfg: Config):
    if codebase_of(cfg) == 'mmseg':
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ValueError('--tta needs tta_model and tta_pipeline in the config')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
        return cfg
    # mmdet: flip TTA by default, as mmdet's test.py does
    if 'tta_model' not in cfg:
        cfg.tta_model = dict(type='DetTTAModel', tta_cfg=dict(
            nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    if 'tta_pipeline' not in cfg:
        data_cfg = cfg.test_dataloader.dataset
        while 'dataset' in data_cfg:
            data_cfg = data_cfg['dataset']
        pipeline = deepcopy(data_cfg.pipeline)
        pipeline[-1] = dict(type='TestTimeAug', transforms=[
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
            [dict(type='PackDetInputs', meta_keys=(
                'img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                'flip_direction'))]])
        cfg.tta_pipeline = pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    return cfg


def test(config: str, checkpoint: str, work_dir: Optional[str] = None,
         out: Optional[str] = None, show: bool = False, show_dir: Optional[str] = None,
         wait_time: float = 2, tta: bool = False, cfg_options: Optional[dict] = None,
         launcher: str = 'none', allow_partial_checkpoint: bool = False, eager: bool = False) -> dict:
    """Evaluate a checkpoint on the config's test set; returns the metrics dict. ``eager``: see
    ``load_config``.

    ``out``: for mmdet a ``.pkl`` file of raw predictions (DumpDetResults); for mmseg a
    directory for the predicted maps (IoUMetric ``output_dir``), as in their tools.
    The checkpoint must fit the model (``check_checkpoint``) unless ``allow_partial_checkpoint``.
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')
    cfg = load_config(config, cfg_options, work_dir, launcher, eager)
    codebase = codebase_of(cfg)
    cfg.load_from = checkpoint
    if show or show_dir:
        cfg = _enable_visualization(cfg, show, show_dir, wait_time)
    if tta:
        cfg = _enable_tta(cfg)
    if out is not None and codebase == 'mmseg':
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
    if out is not None and codebase == 'mmdet' and not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl/.pickle file for mmdet configs, got {out}')
    if codebase == 'mmdet':
        _limit_dynamo_recompiles()
    runner = build_runner(cfg)
    check_checkpoint(runner.model, checkpoint, allow_partial_checkpoint)
    if out is not None and codebase == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out))
    return runner.test()


def release_process_group() -> None:
    """End this process's ``torch.distributed`` process group, if it has one, once a run has finished.

    torchrun / Slurm runs create one (mmengine's ``init_dist``, or ``setup_cpu_distributed``) and nothing
    destroys it; torch warns about that at exit with NCCL. Destroying it is not enough on its own: the
    finished runner still holds it (DDP's reducer) through reference cycles, so without a garbage
    collection first the backend lives on, and gloo's threads (``pt_gloo_runloop``, ``gloo_tcp_loop``) were
    still running at interpreter exit: the likely cause of the rare "terminate called without an active
    exception" (SIGABRT) with which 2-process gloo runs of the tools here died after finishing their work.
    The tools call this after a successful run.
    """
    import gc

    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # free the finished runner, and with it the last references to the process group
        dist.destroy_process_group()


def set_local_rank(local_rank: int):
    """torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK itself."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))


def common_cli_arguments(parser, extra_launchers: Sequence[str] = ()):
    """--cfg-options / --launcher / --no-compile / --local-rank, shared by the fan_mm tools."""
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs, e.g. '
        'train_cfg.max_iters=10 "model.backbone.drop_path_rate=0.2"')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi',
                                               *extra_launchers],
                        default='none', help='job launcher')
    parser.add_argument('--no-compile', action='store_true',
                        help="run the backbone eagerly: turn off the config's compile_blocks (on a GPU the "
                        'fan_mm configs compile each backbone block and replay it as CUDA graphs)')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def checkpoint_cli_arguments(parser):
    """--allow-partial-checkpoint, for the tools that test a checkpoint."""
    parser.add_argument('--allow-partial-checkpoint', action='store_true',
                        help='load a checkpoint that does not fit the model (missing weights keep their random '
                        'initialisation, extra ones are dropped) instead of refusing it')
    return parser
