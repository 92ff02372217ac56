"""Regenerate the golden outputs in this folder by running the official model code.

    python tests/data/golden/make_goldens.py --fan PATH/TO/NVlabs/FAN --tokenlabeling PATH/TO/TokenLabeling \\
        [--only NAME ...] [--out DIR] [--check]

``--fan`` / ``--tokenlabeling`` are checkouts of the official repositories (NVlabs/FAN at ee1b7df,
zihangJiang/TokenLabeling at 9dbfd59); only their model definitions are imported (``models/`` and
``tlt/models/``), nothing of them is copied here. For each golden (``GOLDENS`` below) the script builds the
official model, fills every parameter and float buffer with ``recipe.golden_weight(key, shape)`` (integer
buffers and Swin's attention masks stay as the model builds them), runs the ``recipe.golden_input`` batch in
eval mode, float32, on the CPU, and writes ``<name>.keys.txt``, ``<name>.npz`` and, for FAN-Swin,
``<name>.buffers.npz`` (format: README.md). With
``--check`` it writes nothing and compares with the files already in ``--out`` instead (exit status 1 on a
difference above 1e-5).

The official code was written for timm 0.4 / 0.5. Run it with the timm this project pins (1.0.31): the few
names that timm has since removed are supplied here in memory (``_timm_compat``), none of which changes the
computation -- the models are built by calling their classes directly, and weights are initialised by the
golden recipe, not by timm. timm's fused attention is switched off, so the class attention computes
``softmax(q k^T * scale) v`` step by step, as timm 0.5 did.
"""
import argparse
import importlib
import importlib.util
import json
import os.path as osp
import sys

import numpy as np
import torch

HERE = osp.dirname(osp.abspath(__file__))
FAN_SIZE = (2, 3, 160, 224)  # non-square on purpose: it catches H/W mix-ups
SQUARE = (2, 3, 224, 224)

# name -> (family, official entry point, constructor kwargs, input shape). The name is the file stem; it is
# the entry point unless the golden uses another input size or image size.
GOLDENS = {
    'fan_tiny_12_p16_224': ('fan', 'fan_tiny_12_p16_224', {}, FAN_SIZE),
    'fan_small_12_p16_224': ('fan', 'fan_small_12_p16_224', {}, FAN_SIZE),
    'fan_base_18_p16_224': ('fan', 'fan_base_18_p16_224', {}, FAN_SIZE),
    'fan_tiny_8_p4_hybrid': ('fan', 'fan_tiny_8_p4_hybrid', {}, FAN_SIZE),
    'fan_small_12_p4_hybrid': ('fan', 'fan_small_12_p4_hybrid', {}, FAN_SIZE),
    'fan_base_16_p4_hybrid': ('fan', 'fan_base_16_p4_hybrid', {}, FAN_SIZE),
    # another input size than the other FAN goldens (the models take any multiple of 32)
    'fan_small_12_p4_hybrid_288x192': ('fan', 'fan_small_12_p4_hybrid', {}, (2, 3, 288, 192)),
    'fan_swin_tiny_patch4_window7_224': ('fan', 'fan_swin_tiny_patch4_window7_224', {}, SQUARE),
    'fan_swin_small_patch4_window7_224': ('fan', 'fan_swin_small_patch4_window7_224', {}, SQUARE),
    'lvvit_t': ('lvvit', 'lvvit_t', {}, SQUARE),
    'lvvit_s': ('lvvit', 'lvvit_s', {}, SQUARE),
    'lvvit_m': ('lvvit', 'lvvit_m', {}, SQUARE),
    # a non-default image size: the model is built for 384 px (its position embedding has 24 x 24 + 1 rows)
    'lvvit_s_384': ('lvvit', 'lvvit_s', {'img_size': 384}, (2, 3, 384, 384)),
}
INPUT_SEED = 12345
TOLERANCE = 1e-5  # --check: regenerated vs stored (same code, same machine class: far below the tests' 1e-4)


def _load_recipe():
    spec = importlib.util.spec_from_file_location('golden_recipe', osp.join(HERE, 'recipe.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipe = _load_recipe()


def _timm_compat():
    """Names the official files import from timm 0.4 / 0.5 that timm 1.x no longer has."""
    import timm.layers
    import timm.models.helpers
    import timm.models.vision_transformer as vit
    if not hasattr(timm.models.helpers, 'overlay_external_default_cfg'):
        timm.models.helpers.overlay_external_default_cfg = lambda default_cfg, kwargs: None
    if not hasattr(vit, '_init_vit_weights'):
        vit._init_vit_weights = lambda module, *args, **kwargs: None  # the golden recipe sets every weight
    timm.layers.set_fused_attn(False)


def _direct_build(cls, variant, pretrained=False, default_cfg=None, pretrained_filter_fn=None, feature_cfg=None,
                  **kwargs):
    """Stand-in for timm 0.5's ``build_model_with_cfg`` without pretrained weights or features_only: it
    constructs ``cls(**kwargs)``, which is all that function did in that case."""
    if pretrained or kwargs.pop('features_only', False):
        raise ValueError('make_goldens builds plain models only')
    for key in ('pretrained_cfg', 'pretrained_strict', 'pretrained_custom_load'):
        kwargs.pop(key, None)
    return cls(**kwargs)


def _import_official(root, package, modules):
    """Import ``package`` from the checkout ``root``, patch its builders; returns {module name: module}."""
    if not osp.isdir(osp.join(root, *package.split('.'))):
        raise SystemExit(f'{root}: no {package}/ folder; pass the root of the official checkout')
    _timm_compat()
    sys.path.insert(0, root)
    try:
        found = {name: importlib.import_module(f'{package}.{name}') for name in modules}
    finally:
        sys.path.remove(root)
    for module in found.values():
        if hasattr(module, 'build_model_with_cfg'):
            module.build_model_with_cfg = _direct_build
    return found


def _official_builders(args):
    builders = {}
    if args.fan:
        builders['fan'] = _import_official(osp.abspath(args.fan), 'models',
                                           ['fan', 'convnext_utils', 'swin_utils'])['fan']
    if args.tokenlabeling:
        builders['lvvit'] = _import_official(osp.abspath(args.tokenlabeling), 'tlt.models', ['lvvit'])['lvvit']
    return builders


def _taps(model, family):
    """The tapped module names (official names), in the order of the goldens' meta."""
    names = []
    if family == 'fan' and hasattr(model, 'layers'):  # FAN-Swin: the output of each stage
        names += [f'layers.{i}' for i in range(len(model.layers))]
    elif family == 'fan':
        if hasattr(model.patch_embed, 'backbone'):
            names += [f'patch_embed.backbone.stages.{i}' for i in range(2)]
        names.append('patch_embed')
        names += [f'blocks.{i}' for i in range(len(model.blocks))]
        names += [f'cls_attn_blocks.{i}' for i in range(len(model.cls_attn_blocks))]
    else:
        names.append('patch_embed')
        names += [f'blocks.{i}' for i in range(len(model.blocks))]
    return names


def golden_state_dict(model):
    """``(state_dict, keys rows)``: every float entry from the recipe, the rest as the model built it."""
    state, rows = {}, []
    for key, value in model.state_dict().items():
        dtype = str(value.dtype).replace('torch.', '')
        rows.append(f'{key}\t{json.dumps(list(value.shape))}\t{dtype}')
        if recipe.keep_from_model(key) or not value.is_floating_point():
            state[key] = value
        else:
            state[key] = torch.from_numpy(recipe.golden_weight(key, tuple(value.shape)))
    return state, rows


def run_golden(name, builders):
    """``(keys rows, arrays)`` of one golden."""
    family, entry, kwargs, shape = GOLDENS[name]
    if family not in builders:
        raise SystemExit(f'{name}: pass --{"fan" if family == "fan" else "tokenlabeling"}')
    torch.manual_seed(0)
    model = getattr(builders[family], entry)(**kwargs).eval()
    state, rows = golden_state_dict(model)
    model.load_state_dict(state, strict=True)
    x = torch.from_numpy(recipe.golden_input(shape, seed=INPUT_SEED))
    outputs = {}

    def hook(tap):
        def record(_, __, out):
            outputs[tap] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        return record

    taps = _taps(model, family)
    handles = [model.get_submodule(t).register_forward_hook(hook(t)) for t in taps]
    with torch.no_grad():
        logits = model(x)
    for h in handles:
        h.remove()
    meta = dict(model=entry, family=family, input_shape=list(shape), input_seed=INPUT_SEED,
                input_sum=float(x.sum()), taps={})
    if kwargs:
        meta['kwargs'] = kwargs
    arrays = dict(logits=logits.numpy().astype(np.float32))
    for tap in taps:
        t = outputs[tap].numpy().astype(np.float32)
        meta['taps'][tap] = dict(shape=list(t.shape), mean=float(t.mean()), absmean=float(np.abs(t).mean()))
        arrays[f'{tap}:idx'], arrays[f'{tap}:val'] = recipe.sample(t, tap)
    arrays['meta'] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    # the buffers the recipe does not make (Swin's relative position indices and attention masks)
    buffers = {k: v.numpy() for k, v in state.items() if recipe.keep_from_model(k) and 'num_batches' not in k}
    return rows, arrays, buffers


def compare(name, rows, arrays, buffers, out):
    """Differences between a regenerated golden and the stored one (empty list: the same)."""
    problems = []
    if buffers:
        stored_buffers = np.load(osp.join(out, f'{name}.buffers.npz'))
        if set(stored_buffers) != set(buffers) or any(not np.array_equal(stored_buffers[k], v)
                                                      for k, v in buffers.items()):
            problems.append(f'{name}: the buffers differ from {name}.buffers.npz')
    keys_path = osp.join(out, f'{name}.keys.txt')
    if open(keys_path).read().splitlines() != rows:
        problems.append(f'{name}: the official state_dict keys differ from {keys_path}')
    stored = np.load(osp.join(out, f'{name}.npz'))
    stored_meta = json.loads(bytes(stored['meta']))
    if list(stored_meta['taps']) != [t for t in json.loads(bytes(arrays['meta']))['taps']]:
        problems.append(f'{name}: the taps differ')
    err = float(np.abs(stored['logits'] - arrays['logits']).max())
    if err > TOLERANCE:
        problems.append(f'{name}: logits differ by {err:.2e}')
    for tap in stored_meta['taps']:
        if not np.array_equal(stored[f'{tap}:idx'], arrays[f'{tap}:idx']):
            problems.append(f'{name}: {tap} samples other positions')
            continue
        err = float(np.abs(stored[f'{tap}:val'] - arrays[f'{tap}:val']).max())
        if err > TOLERANCE:
            problems.append(f'{name}: {tap} differs by {err:.2e}')
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--fan', help='checkout of NVlabs/FAN (for the fan_* goldens)')
    parser.add_argument('--tokenlabeling', help='checkout of zihangJiang/TokenLabeling (for the lvvit_* goldens)')
    parser.add_argument('--only', nargs='+', choices=sorted(GOLDENS), help='these goldens (default: all the '
                        'checkouts given allow)')
    parser.add_argument('--out', default=HERE, help='folder of the golden files (default: this one)')
    parser.add_argument('--check', action='store_true', help='compare with the stored files, write nothing')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    builders = _official_builders(args)
    names = args.only or [n for n, spec in GOLDENS.items() if spec[0] in builders]
    problems = []
    for name in names:
        rows, arrays, buffers = run_golden(name, builders)
        if args.check:
            found = compare(name, rows, arrays, buffers, args.out)
            print(f'{name}: {"differs" if found else "same"}')
            problems += found
            continue
        with open(osp.join(args.out, f'{name}.keys.txt'), 'w') as f:
            f.write('\n'.join(rows) + '\n')
        np.savez_compressed(osp.join(args.out, f'{name}.npz'), **arrays)
        if buffers:
            np.savez_compressed(osp.join(args.out, f'{name}.buffers.npz'), **buffers)
        print(f'{name}: wrote {name}.keys.txt, {name}.npz' + (f', {name}.buffers.npz' if buffers else ''))
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
