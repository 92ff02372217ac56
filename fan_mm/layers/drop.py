"""Stochastic depth whose rate does not split compiled graphs."""
import torch
from timm.layers import DropPath as _TimmDropPath


class DropPath(_TimmDropPath):
    """timm's ``DropPath`` (the same computation and random numbers when run eagerly) whose rate, inside
    ``torch.compile``, is a tensor the graph reads rather than a constant it is built for.

    ``torch.compile`` specialises a graph on the Python floats it reads from a module and guards on
    them, so blocks that differ only in their stochastic-depth rate (linear over depth in FAN-Swin and
    LV-ViT) each compiled and recorded a graph of their own. Read from a buffer, the rate is an input of
    the graph, and all blocks of one shape share it. Assigning ``drop_prob`` updates the buffer too.
    The buffer is not persistent: the state_dict is timm's.
    """

    def __init__(self, drop_prob: float = 0., scale_by_keep: bool = True):
        super().__init__(drop_prob, scale_by_keep)
        self.register_buffer('keep_prob', torch.tensor(1. - drop_prob), persistent=False)

    @property
    def drop_prob(self) -> float:
        return self._drop_prob

    @drop_prob.setter
    def drop_prob(self, p: float) -> None:
        if not 0. <= p <= 1.:
            raise ValueError(f'DropPath: drop_prob must be in [0, 1], got {p}')
        self._drop_prob = float(p)
        keep = self._buffers.get('keep_prob') if '_buffers' in self.__dict__ else None
        if keep is not None:
            with torch.no_grad():
                keep.fill_(1. - p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():
            return super().forward(x)
        if not self.training:
            return x
        keep = self.keep_prob.float()
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one draw per sample
        mask = torch.bernoulli(keep.expand(shape))
        if self.scale_by_keep:
            # keep 0 (drop_prob 1): every path dropped and nothing to rescale, as in timm
            mask = mask / torch.where(keep > 0, keep, torch.ones_like(keep))
        return x * mask.to(x.dtype)
