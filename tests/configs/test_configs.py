"""Every config under ``configs/`` (found by globbing, so a new config is tested without edits):

* it builds its model, and one training step (loss mode, then backward) runs on CPU with a small
  input -- real architectures, tiny images; every backbone parameter receives a gradient (so DDP
  needs no ``find_unused_parameters``);
* its optimizer wrapper puts zero weight decay on every normalisation layer and position
  parameter, keeps the base decay elsewhere, and applies the head lr multiplier to heads only.

Configs whose model dicts are identical (1x / 3x, the IN-22K variants) share one built model.
Pretrained loading is off (``init_cfg`` dropped); detectors sample fewer proposals and RoIs than
on COCO (a few objects per image), which changes no layer.
"""
import copy
import functools
import glob
import importlib
import json
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn

mmengine_config = pytest.importorskip('mmengine.config')
pytest.importorskip('mmdet.models')
pytest.importorskip('mmseg.models')

import fan_mm.engine  # noqa: E402,F401  (registers the optimizer constructor)
import fan_mm.models  # noqa: E402,F401  (registers the backbones)
from fan_mm.engine.hooks import DEFAULT_HOOKS  # noqa: E402
from fan_mm.engine.optim_constructor import is_norm_module  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(ROOT, 'configs')
CONFIGS = sorted(
    osp.relpath(p, CONFIG_DIR) for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if '_base_' not in osp.relpath(p, CONFIG_DIR).split(osp.sep))
# parameter names that count as position parameters (no weight decay)
POSITION_KEYS = ('pos_embed', 'cls_token', 'relative_position_bias_table', 'absolute_pos_embed')
IMAGE_SIZE = 64  # multiple of 32 (detection pyramids) and of 16 (ViT tokens)
BATCH = 2  # UPerNet's 1x1 pyramid pooling needs more than one value per BatchNorm channel


def test_the_glob_finds_the_zoo():
    # the glob is what makes the parametrised tests cover new configs: make sure it works
    assert len(CONFIGS) >= 39, CONFIGS
    for expected in ('fan/maskrcnn_fan_s_hybrid_3x_coco.py',
                     'fan/cascade_maskrcnn_fan_t_hybrid_3x_coco.py',
                     'fan/segformer_fan_l_hybrid_cityscapes_1024x1024_160k.py',
                     'fan/setr_mla_fan_b_vit_cityscapes_1024x1024_160k.py',
                     'fan/upernet_fan_b_hybrid_ade20k_512x512_160k.py',
                     'fan/upernet_fan_swin_s_cityscapes_1024x1024_160k.py',
                     'fan/maskrcnn_fan_swin_t_1x_coco.py',
                     'lvvit/upernet_lvvit_l_ade20k_512x512_160k.py',
                     'fan/fasterrcnn_fan_s_vit_2x_coco.py'):
        assert expected in CONFIGS


@pytest.fixture(scope='module', autouse=True)
def lean_cpu():
    """One OpenMP thread (2 threads on 2 shared cores spin against each other: 1 is ~10x faster
    here), and mmengine's model-index YAML files read once: resolving each ``mmdet::`` /
    ``mmseg::`` base parses all ~200 of them again (about 1 s of CPU per config)."""
    import mmengine.config.utils as config_utils
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    cache = {}
    load = config_utils.load

    def cached_load(path, *args, **kwargs):
        if not (isinstance(path, str) and path.endswith(('.yml', '.yaml'))):
            return load(path, *args, **kwargs)
        if path not in cache:
            cache[path] = load(path, *args, **kwargs)
        return cache[path]  # read-only use (_get_cfg_metainfo)

    patch = pytest.MonkeyPatch()
    patch.setattr(config_utils, 'load', cached_load)
    yield
    patch.undo()
    torch.set_num_threads(before)


@functools.lru_cache()
def _zoo_index():
    """{config path relative to the repo: metafile model entry} from model-index.yml, and the READMEs."""
    import yaml
    index = yaml.safe_load(open(osp.join(ROOT, 'model-index.yml')))
    models, readmes = {}, {}
    for meta in index['Import']:
        doc = yaml.safe_load(open(osp.join(ROOT, meta)))
        for collection in doc['Collections']:
            readmes[collection['Name']] = open(osp.join(ROOT, collection['README'])).read()
        for model in doc['Models']:
            assert model['Config'] not in models, f'{model["Config"]} listed twice'
            assert model['In Collection'] in readmes, model['Name']
            models[model['Config']] = model
    return models, readmes


def test_metafiles_list_exactly_the_zoo():
    models, _ = _zoo_index()
    zoo = {f'configs/{name}' for name in CONFIGS if name.startswith(('fan/', 'lvvit/'))}
    assert set(models) == zoo, (sorted(set(models) - zoo), sorted(zoo - set(models)))
    for path, model in models.items():
        assert model['Name'] == osp.splitext(osp.basename(path))[0]
        for result in model.get('Results', []):
            metrics = result['Metrics']
            if 'Retention' not in metrics:
                continue
            # retention = corrupted / clean: check it against the clean result of the same model
            clean_name = result['Dataset'][:-len('-C')]
            clean = next(r['Metrics'] for r in model['Results'] if r['Dataset'] == clean_name)
            (metric, corrupted), = [(k, v) for k, v in metrics.items() if k != 'Retention']
            assert abs(100 * corrupted / clean[metric] - metrics['Retention']) < 0.2, (model['Name'], metrics)


def _load(name):
    return mmengine_config.Config.fromfile(osp.join(CONFIG_DIR, name))


def test_lvvit_l_upernet_is_the_official_l_config():
    """The official L config widens the decoder and the FCN auxiliary head to 512 channels (S and M: 256),
    and the zoo page quotes the parameter count of the model these configs build."""
    for arch, channels in (('s', 256), ('m', 256), ('l', 512)):
        cfg = _load(f'lvvit/upernet_lvvit_{arch}_ade20k_512x512_160k.py')
        assert cfg.model.decode_head.channels == channels, arch
        assert cfg.model.auxiliary_head.channels == channels, arch
        assert cfg.model.auxiliary_head.num_convs == 1 and cfg.model.auxiliary_head.in_index == 2
    # the parameters of the built models (on the meta device: no memory, no init), as the zoo page quotes them
    from mmengine.registry import DefaultScope
    models, readmes = _zoo_index()
    for arch in ('s', 'm', 'l'):
        name = f'lvvit/upernet_lvvit_{arch}_ade20k_512x512_160k.py'
        with DefaultScope.overwrite_default_scope('mmseg'), torch.device('meta'):
            model = _registry('mmseg', 'MODELS').build(_strip_init(_load(name).model))
        quoted = f'{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M'
        assert models[f'configs/{name}']['Metadata']['Parameters'] == quoted, name
        row = next(line for line in readmes['LV-ViT'].splitlines() if line.startswith(f'| [{osp.basename(name)}]'))
        assert f'| {quoted} |' in row, (name, row)


def test_ade20k_multi_scale_test_is_the_official_aug_test():
    """``--tta`` on the ADE20K configs scales as mmseg 0.x's ``--aug-test`` did: MultiScaleFlipAug over
    (2048, 512) x ratios 0.5-1.75 resizes each image, keeping its aspect ratio, to fit (2048 r, 512 r),
    plus a flip of each scale (mmseg 1.x's default ``Resize(scale_factor=r)`` would fail here)."""
    import numpy as np
    from mmengine.registry import DefaultScope
    from mmseg.registry import TRANSFORMS
    ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    for name in ('lvvit/upernet_lvvit_s_ade20k_512x512_160k.py', 'fan/upernet_fan_b_hybrid_ade20k_512x512_160k.py'):
        cfg = _load(name)
        tta = cfg.tta_pipeline[1]
        assert tta['type'] == 'TestTimeAug'
        resizes, flips = tta['transforms'][0], tta['transforms'][1]
        assert [f['prob'] for f in flips] == [0., 1.]
        assert len(resizes) == len(ratios)
        with DefaultScope.overwrite_default_scope('mmseg'):
            transforms = [TRANSFORMS.build(copy.deepcopy(r)) for r in resizes]
        for h, w in ((512, 683), (375, 500), (1200, 900)):
            for r, t in zip(ratios, transforms):
                out = t(dict(img=np.zeros((h, w, 3), np.uint8)))
                # mmseg 0.x / mmcv 1.x: img_scale (int(2048 r), int(512 r)); imrescale keeps the ratio
                long_, short = int(2048 * r), int(512 * r)
                factor = min(long_ / max(h, w), short / min(h, w))
                expected = (int(h * factor + 0.5), int(w * factor + 0.5))
                assert out['img'].shape[:2] == expected, (name, (h, w), r, out['img'].shape)


def test_fan_vit_faster_rcnn_is_the_papers_setting():
    """FAN paper App. A.2: FAN-ViT with Faster R-CNN, 2x schedule, training sizes 640x640 to 896x896,
    testing at 896x896."""
    cfg = _load('fan/fasterrcnn_fan_s_vit_2x_coco.py')
    assert cfg.model.type == 'FasterRCNN' and cfg.model.backbone.type == 'FANViT'
    assert cfg.model.backbone.mode == 'pyramid' and 'mask_head' not in cfg.model.roi_head
    assert cfg.train_cfg.max_epochs == 24
    steps = next(s for s in cfg.param_scheduler if s['type'] == 'MultiStepLR')
    assert steps['milestones'] == [16, 22]
    train = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    scales = train['RandomChoiceResize']['scales']
    assert scales[0] == (640, 640) and scales[-1] == (896, 896) and train['RandomChoiceResize']['keep_ratio']
    assert 'LoadAnnotations' in train and not train['LoadAnnotations'].get('with_mask', False)
    test = {t['type']: t for t in cfg.test_dataloader.dataset.pipeline}
    assert test['Resize']['scale'] == (896, 896) and test['Resize']['keep_ratio']
    assert cfg.test_evaluator['metric'] == 'bbox'


def test_cascade_targets_name_their_tables():
    """Each Cascade FAN-B / FAN-L config carries the published numbers of its own model (Tables 10 and 14),
    and the README's FAN-B row (54.2 / 40.6, probably the IN-22K model) is given to neither FAN-B config."""
    models, _ = _zoo_index()

    def targets(name):
        entry = models[f'configs/fan/{name}.py']
        return {r['Dataset']: r['Metrics'] for r in entry.get('Results', [])}, entry['Metadata']['Reported In']

    expected = {
        'cascade_maskrcnn_fan_b_hybrid_3x_coco': ({'COCO-C': {'box AP': 39.0}}, 'Table 14'),
        'cascade_maskrcnn_fan_b_hybrid_in22k_3x_coco': ({'COCO-C': {'box AP': 40.6}}, 'Table 14'),
        'cascade_maskrcnn_fan_l_hybrid_3x_coco': (
            {'COCO': {'box AP': 54.1}, 'COCO-C': {'box AP': 40.6, 'Retention': 75.0}}, 'Table 10'),
        'cascade_maskrcnn_fan_l_hybrid_in22k_3x_coco': (
            {'COCO': {'box AP': 55.1}, 'COCO-C': {'box AP': 42.0, 'Retention': 76.2}}, 'Table 10'),
    }
    for name, (results, table) in expected.items():
        got, reported_in = targets(name)
        assert got == results, name
        assert table in reported_in, name


def _registry(codebase, name):
    return getattr(importlib.import_module(f'{codebase}.registry'), name)


def _strip_init(model_cfg):
    """A copy of the model config without pretrained loading and without ``compile_blocks`` (inductor
    takes minutes per model on a CPU; tests/models/test_fast_paths.py covers the option)."""
    cfg = copy.deepcopy(model_cfg)
    cfg.pop('pretrained', None)
    cfg.backbone.pop('init_cfg', None)
    cfg.backbone.pop('compile_blocks', None)
    return cfg


def _build(cfg):
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope

    model_cfg = _strip_init(cfg.model)
    if 'size' in model_cfg.get('data_preprocessor', {}):  # segmentors pad every input to the crop
        model_cfg.data_preprocessor.size = (IMAGE_SIZE, IMAGE_SIZE)
    if cfg.default_scope == 'mmdet':  # a few objects per image: sample far fewer proposals / RoIs
        model_cfg.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
        rcnn = model_cfg.train_cfg.rcnn
        for stage in (rcnn if isinstance(rcnn, list) else [rcnn]):
            stage.sampler.num = 16
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = _registry(cfg.default_scope, 'MODELS').build(model_cfg)
    return revert_sync_batchnorm(model)  # as mmengine's runner does without distributed training


def _det_batch(model):
    from mmdet.testing import demo_mm_inputs
    num_classes = model.roi_head.bbox_head[0].num_classes if isinstance(
        model.roi_head.bbox_head, nn.ModuleList) else model.roi_head.bbox_head.num_classes
    data = demo_mm_inputs(batch_size=BATCH, image_shapes=[(3, IMAGE_SIZE, IMAGE_SIZE)] * BATCH,
                          num_items=[3] * BATCH, num_classes=num_classes, with_mask=True)
    return data


def _seg_batch(model):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(BATCH):
        inputs.append(torch.randint(0, 256, (3, IMAGE_SIZE, IMAGE_SIZE), generator=g, dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=(IMAGE_SIZE, IMAGE_SIZE),
                                             ori_shape=(IMAGE_SIZE, IMAGE_SIZE)))
        labels = torch.randint(0, model.decode_head.num_classes, (1, IMAGE_SIZE, IMAGE_SIZE), generator=g)
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


class Built:
    """One built model per distinct model config, shared by the tests of the configs using it."""
    cache = {}

    @classmethod
    def get(cls, cfg):
        key = (cfg.default_scope, json.dumps(_strip_init(cfg.model).to_dict(), sort_keys=True, default=repr))
        if key not in cls.cache:
            cls.cache.clear()  # keep one model in memory (FAN-L / LV-ViT-L are large)
            cls.cache[key] = dict(model=_build(cfg), stepped=False)
        return cls.cache[key]


@pytest.fixture(scope='module', params=CONFIGS)
def config(request):
    cfg = mmengine_config.Config.fromfile(osp.join(CONFIG_DIR, request.param))
    return request.param, cfg


def test_config_is_complete(config):
    name, cfg = config
    assert cfg.default_scope in ('mmdet', 'mmseg'), name
    assert {'fan_mm.models', 'fan_mm.engine'} <= set(cfg.custom_imports['imports']), \
        f'{name}: custom_imports must import fan_mm.models and fan_mm.engine'
    assert cfg.auto_scale_lr.base_batch_size > 0
    assert cfg.optim_wrapper.get('constructor') == 'NoDecayOptimWrapperConstructor', name
    # fan_mm's run hooks are in the config itself, so mmdet's / mmseg's own tools run them too
    hook_types = [h['type'] for h in cfg.get('custom_hooks') or ()]
    assert set(DEFAULT_HOOKS) <= set(hook_types), f'{name}: custom_hooks {hook_types} lack some of {DEFAULT_HOOKS}'
    if 'compile_blocks' in cfg.model.backbone:
        # the model tests build without it (inductor on a CPU takes minutes); the backbone must take it
        # as written (compilation itself starts at the first forward)
        from mmengine.registry import DefaultScope
        backbone_cfg = copy.deepcopy(cfg.model.backbone)
        backbone_cfg.pop('init_cfg', None)
        with DefaultScope.overwrite_default_scope(cfg.default_scope), torch.device('meta'):
            backbone = _registry(cfg.default_scope, 'MODELS').build(backbone_cfg)
        assert backbone.compile_blocks == cfg.model.backbone.compile_blocks, name
    if not name.startswith(('fan/', 'lvvit/')):  # toy configs train from scratch
        return
    # the zoo: every config names the ImageNet checkpoint it expects, in the dict and the comment
    ckpt = cfg.model.backbone.init_cfg
    assert ckpt['type'] == 'Pretrained' and ckpt['checkpoint'].startswith('pretrained/'), ckpt
    text = open(osp.join(CONFIG_DIR, name)).read()
    assert osp.basename(ckpt['checkpoint']) in text, f'{name}: the comment should name the checkpoint file'
    # --cfg-options friendliness: the keys users change merge (no None placeholder blocks them)
    cfg = copy.deepcopy(cfg)
    cfg.merge_from_dict({'model.backbone.init_cfg.checkpoint': 'x.pth',
                         'optim_wrapper.clip_grad.max_norm': 1.0,
                         'optim_wrapper.optimizer.lr': 1e-5,
                         'train_dataloader.batch_size': 1})
    assert cfg.model.backbone.init_cfg.checkpoint == 'x.pth'
    assert cfg.optim_wrapper.clip_grad.max_norm == 1.0
    assert cfg.optim_wrapper.optimizer.lr == 1e-5 and cfg.train_dataloader.batch_size == 1
    # the model zoo page and the metafile describe this config as it is
    models, readmes = _zoo_index()
    entry = models[f'configs/{name}']
    assert entry['Metadata']['Pretrained'].split()[0] == osp.basename(ckpt['checkpoint']), entry['Metadata']
    assert entry['Metadata']['Batch Size'] == cfg.auto_scale_lr.base_batch_size, name
    assert osp.basename(name) in readmes[entry['In Collection']], f'{name} is not in its README'


@pytest.mark.parametrize('name', ['toy/maskrcnn_fan_t_hybrid_toy_coco.py',
                                  'toy/segformer_fan_t_hybrid_toy_cityscapes.py'])
def test_mmengines_own_runner_gets_fan_mms_hooks_from_the_config(name, tmp_path):
    """mmdet's and mmseg's tools/train.py build mmengine's ``Runner`` from the config as it is, without fan_mm's
    ``build_runner`` (which adds the hooks a config leaves out): the NaN stop, the empty-predictions warning and
    the merged-groups resume must come from the configs' own ``custom_hooks``."""
    from mmengine.runner import Runner
    cfg = mmengine_config.Config.fromfile(osp.join(CONFIG_DIR, name))
    cfg.work_dir = str(tmp_path)
    cfg.model.backbone.pop('compile_blocks', None)
    runner = Runner.from_cfg(cfg)
    names = [type(h).__name__ for h in runner.hooks]
    assert set(DEFAULT_HOOKS) <= set(names), names


def test_one_training_step_on_cpu(config):
    name, cfg = config
    entry = Built.get(cfg)
    model = entry['model']
    if entry['stepped']:  # same model config as a config already stepped
        return
    model.train()
    model.zero_grad(set_to_none=True)
    batch = _det_batch(model) if cfg.default_scope == 'mmdet' else _seg_batch(model)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss), f'{name}: loss {log_vars}'
    decode_keys = [k for k in log_vars if 'loss' in k]
    assert decode_keys, log_vars
    loss.backward()
    missing = [n for n, p in model.backbone.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f'{name}: backbone parameters without gradient: {missing[:10]}'
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads), f'{name}: all backbone gradients are zero'
    entry['stepped'] = True


def test_no_weight_decay_on_norms_and_position_parameters(config):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    name, cfg = config
    model = Built.get(cfg)['model']
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    if wrapper_cfg.get('type') == 'AmpOptimWrapper' and not torch.cuda.is_available():
        # mmengine refuses AMP without a GPU; the parameter groups come from the constructor either way
        wrapper_cfg['type'] = 'OptimWrapper'
        wrapper_cfg.pop('loss_scale', None)
        wrapper_cfg.pop('dtype', None)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        optim_wrapper = build_optim_wrapper(model, wrapper_cfg)
    base_lr = cfg.optim_wrapper.optimizer.lr
    base_wd = cfg.optim_wrapper.optimizer.weight_decay
    assert base_wd > 0

    group_of = {}
    for group in optim_wrapper.optimizer.param_groups:
        for p in group['params']:
            assert id(p) not in group_of, f'{name}: a parameter is in two groups'
            group_of[id(p)] = group
    norm_params = {id(p) for m in model.modules() if is_norm_module(m) for p in m.parameters(recurse=False)}
    assert norm_params, name
    head_lr_mult = cfg.optim_wrapper.paramwise_cfg.get('custom_keys', {}).get('head', {}).get('lr_mult', 1.)
    n_decayed = 0
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        group = group_of[id(p)]
        if id(p) in norm_params or any(k in pname for k in POSITION_KEYS):
            assert group['weight_decay'] == 0, f'{name}: {pname} (norm / position) has weight decay'
        elif p.ndim > 1:
            assert math.isclose(group['weight_decay'], base_wd), f'{name}: {pname} lost its weight decay'
            n_decayed += 1
        expected_lr = base_lr * (head_lr_mult if pname.startswith(('decode_head.', 'auxiliary_head.')) else 1.)
        assert math.isclose(group['lr'], expected_lr), f'{name}: {pname} lr {group["lr"]} != {expected_lr}'
    assert n_decayed > 0


def test_constructor_overrides_a_shadowing_custom_key():
    """mmengine alone: the 'head' key wins over 'norm' for a head's BatchNorm; ours does not."""
    from mmengine.optim import build_optim_wrapper
    model = nn.Module()
    model.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    model.backbone.pos_embed = nn.Parameter(torch.zeros(1, 4))
    model.decode_head = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    keys = {'head': dict(lr_mult=10.), 'norm': dict(decay_mult=0.), 'pos_embed': dict(decay_mult=0.)}
    base = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.1))

    def decay_of(wrapper, param):
        return next(g['weight_decay'] for g in wrapper.optimizer.param_groups if any(p is param for p in g['params']))

    plain = build_optim_wrapper(model, dict(base, paramwise_cfg=dict(custom_keys=keys)))
    assert decay_of(plain, model.decode_head[1].weight) == pytest.approx(0.1)  # the shadowing
    assert decay_of(plain, model.backbone[1].weight) == pytest.approx(0.1)  # BN not named *norm*
    ours = build_optim_wrapper(model, dict(base, constructor='NoDecayOptimWrapperConstructor',
                                           paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)},
                                                              no_decay_keys=['pos_embed'])))
    assert decay_of(ours, model.decode_head[1].weight) == 0
    assert decay_of(ours, model.backbone[1].weight) == 0
    assert decay_of(ours, model.backbone.pos_embed) == 0
    assert decay_of(ours, model.backbone[0].weight) == pytest.approx(0.1)
    head_conv = next(g for g in ours.optimizer.param_groups
                     if any(p is model.decode_head[0].weight for p in g['params']))
    assert head_conv['lr'] == pytest.approx(1e-2) and head_conv['weight_decay'] == pytest.approx(0.1)
    with pytest.raises(TypeError, match='no_decay_keys'):
        build_optim_wrapper(model, dict(base, constructor='NoDecayOptimWrapperConstructor',
                                        paramwise_cfg=dict(no_decay_keys='pos_embed')))


@pytest.fixture(scope='module')
def corrupted_copies(tmp_path_factory):
    """One (corruption, severity) of small Cityscapes- and COCO-layout datasets, as
    tools/make_corrupted_dataset.py writes them: {dataset class name: corrupted root}."""
    from fan_mm.datasets.toy import make_toy_cityscapes, make_toy_coco
    from fan_mm.robustness import synthesis
    root = tmp_path_factory.mktemp('corrupted')
    city = make_toy_cityscapes(str(root / 'cityscapes'), num_train=1, num_val=2, size=(128, 64)).root
    coco = make_toy_coco(str(root / 'coco'), num_train=1, num_val=2, size=(128, 96)).root
    synthesis.synthesize(city, str(root / 'cityscapes-c'), 'cityscapes-c', corruptions=['brightness'],
                         severities=[2], layout='cityscapes', progress=False)
    synthesis.synthesize(coco, str(root / 'coco-c'), 'cityscapes-c', corruptions=['brightness'],
                         severities=[2], layout='folder', image_dir='val', progress=False)
    return {'CityscapesDataset': str(root / 'cityscapes-c'), 'CocoDataset': str(root / 'coco-c')}


def test_robustness_tools_can_point_the_config_at_corrupted_data(config, corrupted_copies):
    """What tools/test_robustness.py does to a config: corrupt on the fly after loading, or read
    one (corruption, severity) of a corrupted copy on disk."""
    from fan_mm.robustness import synthesis
    from fan_mm.robustness.config import (corrupt_on_the_fly, image_dir, image_prefix_key, leaf_datasets,
                                          loader_index, use_corrupted_copy)
    name, cfg = config
    clean = leaf_datasets(cfg.test_dataloader['dataset'])
    on_the_fly = leaf_datasets(corrupt_on_the_fly(cfg.test_dataloader, 'fog', 3)['dataset'])
    for before, after in zip(clean, on_the_fly):
        pipeline = after['pipeline']
        step = pipeline[loader_index(pipeline) + 1]
        assert step['type'] == 'CorruptImage' and (step['corruption'], step['severity']) == ('fog', 3), name
        assert step['key_root'] == image_dir(before)
        assert len(pipeline) == len(before['pipeline']) + 1
    kind = clean[0]['type']
    if kind not in corrupted_copies:  # ADE20K: no small dataset of that layout to copy from
        assert kind == 'ADE20KDataset', f'{name}: add a corrupted copy for {kind}'
        return
    root = corrupted_copies[kind]
    on_disk = use_corrupted_copy(cfg.test_dataloader, root, 'brightness', 2, codebase=cfg.default_scope)
    for leaf in leaf_datasets(on_disk['dataset']):
        folder = leaf['data_prefix'][image_prefix_key(leaf)]
        assert osp.normpath(folder) == osp.normpath(synthesis.pair_image_dir(root, 'brightness', 2)), name
        assert osp.isdir(folder)


# The official FAN dense backbones (NVlabs segmentation/ and detection/) use SyncBatchNorm.
OFFICIAL_SYNC_BN = ('FANHybrid', 'FANViT')


@pytest.mark.parametrize('config', [c for c in CONFIGS if c.startswith('fan/')], indirect=True)
def test_fan_dense_configs_synchronise_batchnorm_as_the_official_runs(config):
    name, cfg = config
    if cfg.model.backbone.type in OFFICIAL_SYNC_BN:
        assert cfg.get('sync_bn') == 'torch', f'{name}: set sync_bn = "torch" as the official dense code'
    else:
        assert cfg.get('sync_bn') is None, name


def test_sync_bn_reaches_the_fan_blocks_and_stays_plain_in_one_process():
    """mmengine converts every BatchNorm (the FAN blocks' depthwise-conv BN included) when distributed."""
    from mmengine.model import convert_sync_batchnorm, revert_sync_batchnorm
    from mmengine.registry import DefaultScope
    cfg = mmengine_config.Config.fromfile(osp.join(CONFIG_DIR, 'toy', 'segformer_fan_t_hybrid_toy_cityscapes.py'))
    assert cfg.sync_bn == 'torch'
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = _registry('mmseg', 'MODELS').build(_strip_init(cfg.model))
    model = revert_sync_batchnorm(model)  # what a single-process Runner does
    bns = {n: m for n, m in model.backbone.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    assert any(n.endswith('dwconv.bn') for n in bns), sorted(bns)[:5]
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    synced = convert_sync_batchnorm(model, 'torch')  # what a distributed Runner does with sync_bn='torch'
    dw = [m for n, m in synced.backbone.named_modules() if n.endswith('dwconv.bn')]
    assert dw and all(isinstance(m, nn.SyncBatchNorm) for m in dw)
