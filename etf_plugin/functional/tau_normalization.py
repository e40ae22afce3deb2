"""τ-normalisation of a linear classifier (Kang et al., ICLR 2020,
"Decoupling representation and classifier for long-tailed recognition").

Cross-entropy on long-tailed data grows the weight norms of frequent classes;
τ-normalisation rescales every class row ``w_k`` to ``w_k / ||w_k||^tau``
after training: ``tau = 0`` keeps the classifier, ``tau = 1`` gives all rows
unit norm (a cosine classifier). Kang et al. drop the bias.
"""
import torch


def tau_normalize(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """Rescale each class row to ``w_k / ||w_k||^tau``.

    The new row norms are ``||w_k||^(1 - tau)``; directions are unchanged.

    Args:
        weight (torch.Tensor): ``(K, d)`` classifier, one row per class
            (``LinearClsHead``'s ``fc.weight``).
        tau (float): Exponent, usually in ``[0, 1]``.

    Returns:
        torch.Tensor: The rescaled ``(K, d)`` classifier (a new tensor).
    """
    if weight.dim() != 2:
        raise ValueError(f'weight must be a (num_classes, dim) matrix, got '
                         f'shape {tuple(weight.shape)}.')
    norms = weight.norm(dim=1, keepdim=True)
    if tau != 0:
        zero = torch.nonzero(norms.squeeze(1) == 0).flatten().tolist()
        if zero:
            raise ValueError(
                f'Classifier rows of classes {zero[:10]} are all zero: '
                f'their norm cannot be raised to a nonzero tau.')
    return weight / norms.pow(tau)
