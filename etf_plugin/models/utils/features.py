"""Features of a classifier at named stages: the one feature extractor of
the measurement hooks and the analysis tools."""
import re
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from etf_plugin.functional.etf import safe_normalize

# What each head stage is, for every head:
# - 'pre_logits': what the classifier sees (ETFHead: after its BN and L2
#   normalisation; LinearClsHead: the pooled feature).
# - 'unnormalized': the head's feature before any L2 normalisation (ETFHead
#   and cosine heads: after their BN; LinearClsHead: the pooled feature).
# - 'normalized': that feature L2-normalised, for every head alike.
# The last two put heads with and without a normalising neck on the same
# representation.
FEATURE_STAGES = ('pre_logits', 'unnormalized', 'normalized')
# Besides those: 'neck' (the neck's output) and module outputs, by name:
# 'backbone.<i>' is the i-th stage of the backbone (the attributes below, in
# this order of preference), any other dotted name a module of the model.
BACKBONE_STAGE_LISTS = ('res_layers', 'stages', 'layers')
_BACKBONE_INDEX = re.compile(r'^backbone\.(\d+)$')


def check_feature_stage(stage: str) -> str:
    """Raise a ``ValueError`` unless ``stage`` can name a stage: one of
    :data:`FEATURE_STAGES`, ``'neck'`` or a dotted module name (checked
    against the model by :class:`StageFeatures`)."""
    if stage not in FEATURE_STAGES and stage != 'neck' and '.' not in stage:
        raise ValueError(
            f'Unknown feature stage {stage!r}; choose one of '
            f'{FEATURE_STAGES}, "neck", "backbone.<i>" (the i-th backbone '
            f'stage) or the dotted name of a module of the model.')
    return stage


def backbone_stages(backbone: nn.Module) -> List[nn.Module]:
    """The stages of a backbone, in depth order: ``res_layers``
    (MMPretrain's ResNets), ``stages`` (``CifarResNet``, ConvNeXt, Swin) or
    ``layers`` (a ViT's encoder layers); empty if it has none of them."""
    for attr in BACKBONE_STAGE_LISTS:
        stages = getattr(backbone, attr, None)
        if attr == 'res_layers' and isinstance(stages, (list, tuple)):
            stages = [getattr(backbone, name) for name in stages]
        if isinstance(stages, (nn.ModuleList, list, tuple)) and stages:
            return list(stages)
    return []


def backbone_stage(backbone: nn.Module, index: int) -> nn.Module:
    """The ``index``-th of :func:`backbone_stages`, or a ``ValueError``
    naming what exists."""
    stages = backbone_stages(backbone)
    if not stages:
        raise ValueError(
            f'backbone.{index}: {type(backbone).__name__} has none of '
            f'{BACKBONE_STAGE_LISTS}; name the module instead (e.g. '
            f'"backbone.layer3"; see model.named_modules()).')
    if not 0 <= index < len(stages):
        raise ValueError(
            f'backbone.{index}: {type(backbone).__name__} has {len(stages)} '
            f'stages (backbone.0 ... backbone.{len(stages) - 1}).')
    return stages[index]


def pool_features(output, cls_token: bool = False) -> torch.Tensor:
    """A module output as ``(B, d)`` features: the last element of a tuple,
    global average pooling of a feature map ``(B, C, ...)``, a
    transformer's tokens ``(B, N, C)`` reduced to the class token (index 0,
    with ``cls_token``) or their mean."""
    if isinstance(output, (tuple, list)):
        output = output[-1]
    if output.dim() == 3:
        return output[:, 0] if cls_token else output.mean(1)
    if output.dim() > 3:
        return output.flatten(2).mean(2)
    return output.flatten(1)


class StageFeatures:
    """The features of several stages of a classifier from one forward pass.

    Module stages are read with forward hooks (pooled at once, so that a
    later in-place operation cannot change them); the neck and head stages
    from the outputs of ``extract_feat`` and of the head's ``pre_logits``.
    Use as a context manager, which removes the hooks; call it under
    ``torch.no_grad()`` with the model in eval mode.

    Args:
        model (nn.Module): An (unwrapped) MMPretrain ``ImageClassifier``.
        stages (Sequence[str]): Stage names, see
            :func:`check_feature_stage`.
    """

    def __init__(self, model: nn.Module, stages: Sequence[str]):
        self.model = model
        self.stages = [check_feature_stage(s) for s in stages]
        if len(set(self.stages)) != len(self.stages):
            raise ValueError(f'Stages repeat: {self.stages}.')
        if 'neck' in self.stages and getattr(model, 'neck', None) is None:
            raise ValueError('The model has no neck; drop the stage "neck".')
        backbone = getattr(model, 'backbone', None)
        cls_token = getattr(backbone, 'cls_token', None) is not None
        modules = dict(model.named_modules())
        self._captured: Dict[str, torch.Tensor] = {}
        self._handles = []
        for stage in self.stages:
            if stage in FEATURE_STAGES or stage == 'neck':
                continue
            match = _BACKBONE_INDEX.match(stage)
            if match:
                module = backbone_stage(backbone, int(match.group(1)))
            elif stage in modules:
                module = modules[stage]
            else:
                raise ValueError(
                    f'Stage {stage!r} is not a module of the model; use '
                    f'"backbone.<i>", "neck", one of {FEATURE_STAGES} or a '
                    f'name from model.named_modules().')
            self._handles.append(
                module.register_forward_hook(
                    self._capture(stage, cls_token)))

    def _capture(self, stage: str, cls_token: bool):

        def hook(module, inputs, output):
            self._captured[stage] = pool_features(output, cls_token)

        return hook

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def remove(self) -> None:
        """Remove the forward hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __call__(self, data_batch: dict
                 ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """The ``(B, d)`` features of every stage and the ``(B,)`` labels.

        Args:
            data_batch (dict): A batch from a dataloader; the model's data
                preprocessor runs on it without training augmentation.
        """
        model = self.model
        data = model.data_preprocessor(data_batch, False)
        self._captured.clear()
        neck_out = model.extract_feat(data['inputs'])
        feats = dict(self._captured)
        self._captured.clear()
        if 'neck' in self.stages:
            feats['neck'] = pool_features(neck_out)
        if 'pre_logits' in self.stages:
            feats['pre_logits'] = pool_features(
                model.head.pre_logits(neck_out))
        unnormalized = None
        if {'unnormalized', 'normalized'} & set(self.stages):
            head = model.head
            if hasattr(head, 'unnormalized_features'):
                unnormalized = head.unnormalized_features(neck_out)
            else:
                unnormalized = head.pre_logits(neck_out)
            unnormalized = pool_features(unnormalized)
        if 'unnormalized' in self.stages:
            feats['unnormalized'] = unnormalized
        if 'normalized' in self.stages:
            feats['normalized'] = safe_normalize(unnormalized.float())
        labels = torch.cat([s.gt_label for s in data['data_samples']])
        device = next(iter(feats.values())).device
        return {s: feats[s] for s in self.stages}, labels.to(device)


def extract_features(model: nn.Module,
                     data_batch: dict,
                     stage: str = 'pre_logits',
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``(B, d)`` features and ``(B,)`` labels of a batch at one stage.

    Runs the model's data preprocessor (without training augmentation) and
    ``extract_feat``; call it under ``torch.no_grad()`` with the model in
    eval mode. Several stages at once: :class:`StageFeatures`.

    Args:
        model (nn.Module): An (unwrapped) MMPretrain ``ImageClassifier``.
        data_batch (dict): A batch from a dataloader.
        stage (str): See :func:`check_feature_stage`. Defaults to
            ``'pre_logits'``.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: Features and integer labels.
    """
    with StageFeatures(model, [stage]) as extractor:
        feats, labels = extractor(data_batch)
    return feats[stage], labels
