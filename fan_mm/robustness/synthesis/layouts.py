"""Source layouts: where a dataset keeps its evaluation images, and the sorted list of them
(the keys that seeds are derived from and that the output mirrors)."""
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from fan_mm.utils.image_io import IMAGE_EXTENSIONS

from ..codec import output_name

__all__ = ['LAYOUTS', 'Layout', 'Source', 'SynthesisError', 'resolve_source', 'check_names', 'unit_out_rel']


class SynthesisError(RuntimeError):
    """The request cannot be carried out (bad source, destination or settings)."""


@dataclass(frozen=True)
class Layout:
    """Where a dataset keeps its evaluation images, relative to its root.

    ``image_dir`` may contain ``{split}``; ``suffixes`` are the file endings that count as
    images of the split (case-insensitive); subfolders are searched when ``recursive``.
    """
    name: str
    image_dir: str
    suffixes: Tuple[str, ...]
    recursive: bool
    splits: Dict[str, str] = field(default_factory=dict)  # split name -> what goes into {split}

    def image_dir_for(self, split: str) -> str:
        return self.image_dir.format(split=self.splits.get(split, split))


LAYOUTS: Dict[str, Layout] = {
    'cityscapes': Layout('cityscapes', 'leftImg8bit/{split}', ('_leftImg8bit.png',), True),
    'coco': Layout('coco', '{split}', ('.jpg',), False, {'val': 'val2017', 'train': 'train2017',
                                                          'test': 'test2017'}),
    'ade20k': Layout('ade20k', 'images/{split}', ('.jpg',), True, {'val': 'validation', 'train': 'training'}),
    'folder': Layout('folder', '', IMAGE_EXTENSIONS, True),
}


@dataclass
class Source:
    """The images to corrupt: ``root/image_dir/key`` for each key (POSIX, sorted).

    ``key`` (the path relative to the image directory of the split) is what seeds are
    derived from; the on-the-fly transform derives the same key from the dataset's image
    prefix, which is why both produce the same pixels.
    """
    root: str
    layout: str
    image_dir: str  # relative to root, POSIX, '' for root itself
    keys: List[str]

    def path(self, key: str) -> str:
        return osp.join(self.root, *self.image_dir.split('/'), *key.split('/')) if self.image_dir \
            else osp.join(self.root, *key.split('/'))

    def rel(self, key: str) -> str:
        """Path of ``key`` relative to the source root (what the output mirrors)."""
        return f'{self.image_dir}/{key}' if self.image_dir else key


def _detect_layout(src: str, split: str) -> str:
    for name in ('cityscapes', 'coco', 'ade20k'):
        if osp.isdir(osp.join(src, *LAYOUTS[name].image_dir_for(split).split('/'))):
            return name
    return 'folder'


def _scan(directory: str, suffixes: Sequence[str], recursive: bool) -> List[str]:
    lowered = tuple(s.lower() for s in suffixes)
    keys = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.')) if recursive else []
        rel_dir = osp.relpath(dirpath, directory)
        for name in filenames:
            if name.startswith('.') or not name.lower().endswith(lowered):
                continue
            keys.append(name if rel_dir == '.' else f'{rel_dir.replace(os.sep, "/")}/{name}')
    return sorted(keys)


def resolve_source(src: str, layout: str = 'auto', split: str = 'val', image_dir: Optional[str] = None,
                   suffixes: Optional[Sequence[str]] = None) -> Source:
    """Find the images of ``src``.

    ``layout``: ``cityscapes`` (``leftImg8bit/<split>/<city>/*_leftImg8bit.png``), ``coco``
    (``<split>2017/*.jpg``), ``ade20k`` (``images/validation/*.jpg``), ``folder`` (every
    image under ``src``) or ``auto`` (the first preset whose image folder exists, else
    ``folder``). ``image_dir`` (relative to ``src``) and ``suffixes`` override the preset.
    """
    if not osp.isdir(src):
        raise SynthesisError(f'source {src!r} is not a directory')
    if layout == 'auto':
        layout = _detect_layout(src, split)
    if layout not in LAYOUTS:
        raise SynthesisError(f'unknown layout {layout!r}; choose one of {["auto", *LAYOUTS]}')
    preset = LAYOUTS[layout]
    rel = preset.image_dir_for(split) if image_dir is None else image_dir
    rel = rel.replace(os.sep, '/').strip('/')
    if rel in ('.', ''):
        rel = ''
    if rel.startswith('..') or osp.isabs(rel):
        raise SynthesisError(f'image directory {image_dir!r} must lie inside the source {src!r}')
    directory = osp.join(src, *rel.split('/')) if rel else src
    if not osp.isdir(directory):
        raise SynthesisError(f'{layout} layout: image folder {directory!r} does not exist '
                             f'(use --image-dir to point at the images relative to {src!r})')
    keys = _scan(directory, tuple(suffixes) if suffixes else preset.suffixes, preset.recursive)
    if not keys:
        raise SynthesisError(f'no images ending in {list(suffixes or preset.suffixes)} under {directory!r}')
    return Source(osp.abspath(src), layout, rel, keys)


def check_names(source: Source, fmt: str) -> None:
    seen: Dict[str, str] = {}
    for key in source.keys:
        out = output_name(key, fmt)
        if out in seen:
            raise SynthesisError(f'{source.path(seen[out])} and {source.path(key)} would both be written as '
                                 f'{out!r} ({fmt} output); rename one of them or pick another --format')
        seen[out] = key


def unit_out_rel(source: Source, key: str, corruption: str, severity: int, fmt: str) -> str:
    """Output path relative to ``dst``: ``<c>/<s>/<path relative to src>`` (renamed to the format)."""
    return f'{corruption}/{severity}/{output_name(source.rel(key), fmt)}'
