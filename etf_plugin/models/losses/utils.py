"""What the plugin's loss modules share: the label check of their first
batch."""
import torch
import torch.nn as nn

from etf_plugin.functional.dot_regression import check_labels


def check_labels_once(loss: nn.Module, target: torch.Tensor,
                      num_classes: int) -> None:
    """Check the labels of a loss module's first batch on the host.

    The first call runs :func:`~etf_plugin.functional.check_labels`, whose
    error names the fix; later calls do nothing, so no training step waits
    for the host to read labels. ``ClassCountsHook`` checks every label of
    the training set before training starts, and a bad label that still
    comes later stops the indexing kernels of the loss (``IndexError`` on a
    CPU, a device-side assertion on a GPU). Nothing is checked while
    ``torch.compile`` traces the module.

    Args:
        loss (nn.Module): The loss module; it remembers that it checked.
        target (torch.Tensor): ``(N,)`` labels or ``(N, K)`` soft targets.
        num_classes (int): Number of classes ``K``.
    """
    if getattr(loss, '_checked_labels', False) or \
            torch.compiler.is_compiling():
        return
    check_labels(target, num_classes)
    loss._checked_labels = True
