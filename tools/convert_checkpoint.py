"""Convert an official FAN / LV-ViT ImageNet checkpoint into one that mmdet / mmseg ``load_from`` accepts.

    python tools/convert_checkpoint.py fan_hybrid_small.pth.tar work_dirs/fan_s_hybrid_mmdet.pth --codebase mmdet

The model is identified from the file's keys and shapes unless ``--model`` names it.
"""
import argparse

from fan_mm.models import convert


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint (flat, or under state_dict / state_dict_ema / model)')
    parser.add_argument('dst', help='output checkpoint for load_from')
    parser.add_argument('--model', help='registered model name, e.g. fan_small_12_p4_hybrid (default: guessed)')
    parser.add_argument('--family', help="restrict the guess to one family: 'fan', 'lvvit', 'fan_swin'")
    parser.add_argument('--codebase', choices=convert.CODEBASES, default='mmdet',
                        help='dense layout of the target config (default: mmdet)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    meta = convert.convert_checkpoint(args.src, args.dst, model=args.model, family=args.family,
                                      codebase=args.codebase)
    print(f"{args.dst}: {meta['model']} as {meta['backbone']} for {meta['codebase']}. {meta['note']}")


if __name__ == '__main__':
    main()
