"""Features of a classifier at a named stage: the one feature extractor of
the measurement hooks and the analysis code."""
from typing import Tuple

import torch
from torch import nn

from etf_plugin.functional.etf import safe_normalize

# What each stage is, for every head:
# - 'pre_logits': what the classifier sees (ETFHead: after its BN and L2
#   normalisation; LinearClsHead: the pooled feature).
# - 'unnormalized': the head's feature before any L2 normalisation (ETFHead
#   and cosine heads: after their BN; LinearClsHead: the pooled feature).
# - 'normalized': that feature L2-normalised, for every head alike.
# The last two put heads with and without a normalising neck on the same
# representation.
FEATURE_STAGES = ('pre_logits', 'unnormalized', 'normalized')


def check_feature_stage(stage: str) -> str:
    """Raise a ``ValueError`` unless ``stage`` is one of
    :data:`FEATURE_STAGES`."""
    if stage not in FEATURE_STAGES:
        raise ValueError(f'Unknown feature stage {stage!r}; choose one of '
                         f'{FEATURE_STAGES}.')
    return stage


def extract_features(model: nn.Module,
                     data_batch: dict,
                     stage: str = 'pre_logits'
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``(B, d)`` features and ``(B,)`` labels of a batch.

    Runs the model's data preprocessor (without training augmentation) and
    ``extract_feat``; call it under ``torch.no_grad()`` with the model in
    eval mode.

    Args:
        model (nn.Module): An (unwrapped) MMPretrain ``ImageClassifier``.
        data_batch (dict): A batch from a dataloader.
        stage (str): One of :data:`FEATURE_STAGES`. Defaults to
            ``'pre_logits'``.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: Features and integer labels.
    """
    check_feature_stage(stage)
    data = model.data_preprocessor(data_batch, False)
    if stage == 'pre_logits':
        feats = model.extract_feat(data['inputs'], stage='pre_logits')
    else:
        neck_out = model.extract_feat(data['inputs'])
        head = model.head
        if hasattr(head, 'unnormalized_features'):
            feats = head.unnormalized_features(neck_out)
        else:
            feats = head.pre_logits(neck_out)
    if isinstance(feats, (tuple, list)):
        feats = feats[-1]
    feats = feats.flatten(1)
    if stage == 'normalized':
        feats = safe_normalize(feats.float())
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    return feats, labels.to(feats.device)
