import warnings
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS


class BasicBlockA(BaseModule):
    """3x3-3x3 residual block whose shortcut, when the shape changes, is the
    parameter-free "option A" of He et al. (2016): subsample by the stride
    and zero-pad the new channels.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first convolution. Defaults to 1.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.extra_channels:
            half = self.extra_channels // 2
            x = F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


@MODELS.register_module()
class CifarResNet(BaseBackbone):
    """The CIFAR ResNet of He et al. (2016) used by long-tail papers
    (ResNet-20, -32, -44, -56, -110: ``depth`` picks it).

    ``depth = 6n + 2``: a 3x3 stem and three stages of ``n`` basic blocks with
    ``base_channels * (1, 2, 4)`` channels, strides 1, 2, 2 and option-A
    shortcuts. ResNet-32 (n = 5) with 16 base channels gives 64-d features
    (CIFAR-10-LT); Yang et al. use 32 base channels (128-d) for CIFAR-100-LT.
    Unlike mmpretrain's ``ResNet_CIFAR`` (an ImageNet ResNet with a CIFAR
    stem), this is the small 0.46 M-parameter network of the LT literature.

    Args:
        depth (int): ``6n + 2``. Defaults to 32.
        base_channels (int): Width of the first stage. Defaults to 16.
        in_channels (int): Image channels. Defaults to 3. Turning colour
            images to grey for a 1-channel network is the data pipeline's
            job (the digits test pipeline does it).
        out_indices (Sequence[int]): Stages to output (0, 1, 2).
            Defaults to ``(2, )``.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to Kaiming for convolutions. It is applied when the
            backbone is built, not later by the Runner's ``init_weights``:
            the random draws then follow the backbone's own construction, so
            at one seed the backbone gets the same weights whatever head is
            built after it (a ``LinearClsHead`` draws from the global random
            generator when built, an ``ETFHead`` does not).
    """

    def __init__(self,
                 depth: int = 32,
                 base_channels: int = 16,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (2, ),
                 init_cfg=[
                     dict(type='Kaiming', layer='Conv2d'),
                     dict(type='Constant', val=1, layer='_BatchNorm')
                 ]):
        super().__init__(init_cfg=init_cfg)
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f'depth must be 6n + 2 (n >= 1), got {depth}.')
        if not out_indices or not set(out_indices) <= {0, 1, 2}:
            raise ValueError(f'out_indices must be within (0, 1, 2), '
                             f'got {out_indices}.')
        blocks_per_stage = (depth - 2) // 6
        self.in_channels = in_channels
        self.out_indices = tuple(out_indices)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(base_channels), nn.ReLU(inplace=True))
        stages = []
        channels = base_channels
        for i in range(3):
            out_channels = base_channels * 2**i
            blocks = []
            for j in range(blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(BasicBlockA(channels, out_channels, stride))
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.out_channels = channels
        # Now rather than in the Runner's init_weights (which skips a module
        # already initialised): see init_cfg above.
        self.init_weights()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            # int(): under jit tracing (mmengine's FLOP counter) the sizes
            # are tensors
            shape = tuple(int(size) for size in x.shape)
            raise ValueError(
                f'CifarResNet(in_channels={self.in_channels}) got input of '
                f'shape {shape}; it takes (N, {self.in_channels}, '
                f'H, W). Convert the images in the data pipeline (e.g. '
                f'RandomGrayscale(prob=1.0, keep_channels=False) for a '
                f'1-channel network, as the digits test pipeline does).')
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


@MODELS.register_module(name='ResNet32_CIFAR')
class _ResNet32CIFARAlias(CifarResNet):
    """``ResNet32_CIFAR``, the 0.1.0 name of :class:`CifarResNet`: same
    arguments, same state-dict keys. Kept so that configs and checkpoints of
    0.1.0 still build; it warns once per model."""

    def __init__(self, *args, **kwargs):
        warnings.warn(
            "backbone type 'ResNet32_CIFAR' is renamed 'CifarResNet' (it "
            "builds any depth 6n + 2); write type='CifarResNet' in the "
            "config. The weights load unchanged.", DeprecationWarning,
            stacklevel=2)
        super().__init__(*args, **kwargs)
