"""Reaching into a runner's model: the one place that unwraps model wrappers
and finds a head's classifier and number of classes."""
from typing import Optional, Tuple

import torch
from mmengine.model import is_model_wrapper
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside MMEngine's (DDP, FSDP, TTA) wrappers.

    Args:
        model (nn.Module): ``runner.model``.

    Returns:
        nn.Module: The wrapped model, or ``model`` if it is not wrapped.
    """
    while is_model_wrapper(model):
        model = model.module
    return model


def num_classes_of(model: nn.Module) -> Optional[int]:
    """The number of classes of a model's head.

    Args:
        model (nn.Module): ``runner.model``, wrapped or not.

    Returns:
        int | None: ``head.num_classes`` of the unwrapped model, or None when
        it has no head or its head no ``num_classes``.
    """
    head = getattr(unwrap_model(model), 'head', None)
    return getattr(head, 'num_classes', None)


def classifier_of(
    head: nn.Module
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """The classifier rows and bias of a head, if it has a known classifier.

    Args:
        head (nn.Module): A head with ``etf_vectors`` (``ETFHead``), with a
            ``class_weight()`` method (e.g. a cosine head, whose rows are
            normalised), or with an ``nn.Linear`` ``fc`` (``LinearClsHead``)
            or ``layers.head`` (``VisionTransformerClsHead``).

    Returns:
        tuple: ``(weight (K, d), bias (K,) or None)``, or ``(None, None)``
        for other heads, which get no classifier metrics.
    """
    etf = getattr(head, 'etf_vectors', None)
    if isinstance(etf, torch.Tensor):
        return etf, None
    class_weight = getattr(head, 'class_weight', None)
    if callable(class_weight):
        return class_weight(), None
    fc = getattr(head, 'fc', None)
    if not isinstance(fc, nn.Linear):  # VisionTransformerClsHead's name
        fc = getattr(getattr(head, 'layers', None), 'head', None)
    if isinstance(fc, nn.Linear):
        return fc.weight, fc.bias
    return None, None
