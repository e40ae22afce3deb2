"""``TauNormalizedHead``: a ``LinearClsHead`` that predicts with a
τ-normalised classifier."""
from typing import List, Optional, Tuple

import torch
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from etf_plugin.functional.tau_normalization import tau_normalize


@MODELS.register_module()
class TauNormalizedHead(LinearClsHead):
    """``LinearClsHead`` with τ-normalisation at prediction (Kang et al.,
    ICLR 2020).

    ``predict`` scores a sample with ``h^T w_k / ||w_k||^tau``: the rows of a
    classifier trained with cross-entropy on long-tailed data grow with the
    class frequency, and dividing by a power of their norm evens the
    classes out without retraining (see
    :func:`etf_plugin.functional.tau_normalize`). Kang et al. drop the bias
    (``keep_bias=False``). Training, ``forward`` and the state dict are those
    of ``LinearClsHead``, so a cross-entropy checkpoint loads into it, and
    choosing τ is a sweep of the test tool on held-out data::

        python tools/test.py configs/resnet32_digitslt_tau_norm.py CKPT \\
            --cfg-options model.head.tau=0.5

    (the config validates on the held-out part of the training split, so τ
    is never chosen on the test split).

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Number of input channels.
        tau (float): Exponent of the row norms; 0 gives the plain classifier,
            1 a cosine classifier. Defaults to 1.0.
        keep_bias (bool): Add the trained bias to the τ-normalised scores.
            Defaults to False.
        **kwargs: Passed to ``LinearClsHead`` (``loss``, ``topk``,
            ``cal_acc``, ``init_cfg``).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 tau: float = 1.0,
                 keep_bias: bool = False,
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        if not isinstance(tau, (int, float)) or tau != tau:
            raise ValueError(f'tau must be a number, got {tau!r}.')
        self.tau = float(tau)
        self.keep_bias = keep_bias

    def predict(
        self,
        feats: Tuple[torch.Tensor],
        data_samples: Optional[List[Optional[DataSample]]] = None
    ) -> List[DataSample]:
        """Predict with the τ-normalised classifier.

        Args:
            feats (tuple[torch.Tensor]): Features of the backbone/neck.
            data_samples (list[DataSample | None], optional): Annotations;
                their ``pred_score`` and ``pred_label`` are set.

        Returns:
            list[DataSample]: The predictions.
        """
        weight = tau_normalize(self.fc.weight, self.tau)
        cls_score = self.pre_logits(feats) @ weight.t()
        if self.keep_bias and self.fc.bias is not None:
            cls_score = cls_score + self.fc.bias
        return self._get_predictions(cls_score, data_samples)
