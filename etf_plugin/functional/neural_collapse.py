"""Neural-collapse (NC) metrics from streaming sufficient statistics.

Notation: ``h_i`` the feature fed to the classifier (the head's
``pre_logits``), ``y_i`` its label, ``N`` samples, ``K`` classes *present* in
the measured data, ``n_k`` their counts, ``mu_k`` the class means, ``W`` the
classifier rows ``w_k`` (``K x d``), ``b`` its bias.

Centring under imbalance. Every centred quantity uses the *mean of the class
means* ``mu_c = (1/K) sum_k mu_k`` (each class weighs the same), not the
sample-weighted global mean ``mu_G = (1/N) sum_i h_i``. With imbalanced
classes ``mu_G`` leans toward the head classes: class means that sit exactly
on a centred simplex ETF would, centred at ``mu_G``, no longer be equinorm or
equiangular, and a perfect collapse would read as non-ETF. ``Mbar`` below is
the ``K x d`` matrix of rows ``mu_k - mu_c``. On balanced data ``mu_c = mu_G``
and every metric is the usual one.

Metrics (Papyan, Han & Donoho, PNAS 2020; Zhu et al., NeurIPS 2021):

- ``nc1 = tr(Sigma_W Sigma_B^+) / K`` with
  ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`` and
  ``Sigma_B = (1/K) Mbar^T Mbar`` (each class weighs ``1/K``). The
  pseudo-inverse drops eigenvalues of ``Sigma_B`` below ``1e-10`` times the
  largest (the ``rcond`` of Hong & Ling's code): directions that weak are
  classes merged by minority collapse, and the within-class variance along
  them, a difference of large streamed sums, is rounding noise there.
- ``nc2_equinorm = std_k ||Mbar_k|| / mean_k ||Mbar_k||`` (sample std,
  ``torch.std``'s default).
- ``nc2_equiangle = mean_{k != k'} |cos(Mbar_k, Mbar_k') + 1/(K-1)|``: the
  spread of the pairwise cosines around the simplex value ``-1/(K-1)``;
  ``nc2_cos_std = std_{k != k'} cos(Mbar_k, Mbar_k')`` is Papyan's
  equiangularity.
- ``nc2_etf_dist = || G/||G||_F - (I_K - 11^T/K)/sqrt(K-1) ||_F`` with
  ``G = Mbar Mbar^T`` (Zhu et al.; the target has unit Frobenius norm).
- With a classifier: the same three numbers for the raw rows ``w_k``
  (``nc2_equinorm_w``, ``nc2_equiangle_w``, ``nc2_etf_dist_w``, all zero for
  a fixed ETF), and self-duality
  ``nc3 = || W/||W||_F - Mbar/||Mbar||_F ||_F^2`` (Papyan).
- ``nc4``: the fraction of samples on which the nearest-class-mean rule
  ``argmin_k ||h_i - mu_k||`` (present classes) disagrees with the
  classifier's prediction ``argmax_k (w_k^T h_i + b_k)`` (all classes). It
  needs the *final* class means for every sample, which sums alone cannot
  give: it is measured in a second pass over the data (``update_ncc`` after
  ``update`` has seen everything); see :class:`NCAccumulator`.
- ``wm_cos = mean_k cos(w_k, Mbar_k)``: the feature-classifier alignment.
- Minority collapse, with the *training* class counts ``class_counts`` split
  into many (``n > 100``), medium (``20 <= n <= 100``) and few (``n < 20``)
  shots by default: per group ``g``, ``mc_means_cos_g`` (mean pairwise cosine
  of the centred class means; tends to ``+1`` when the group's features
  collapse together), ``mc_w_cos_g`` (the same for the classifier rows: Fang
  et al.'s minority collapse) and ``wm_cos_g``.

Classes absent from the measured data are left out of every formula (``K``
counts present classes only) and listed under ``absent_classes``; a metric
that needs more classes than are present (e.g. a pairwise cosine within a
group of one class) is left out of the result rather than returned as NaN.
"""
import contextlib
import math
import warnings
from typing import Dict, List, Optional, Sequence

import torch

from .long_tail import shot_groups

# Relative cut-off of the pseudo-inverse in NC1 (see the module docstring).
PINV_RCOND = 1e-10


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    """Run the block with torch's intra-op pool set to one thread when
    ``device`` is the CPU (no-op elsewhere or when it has one already); the
    previous setting is restored whatever happens. The setting is process
    wide: another Python thread running torch ops meanwhile would run them
    on one thread too."""
    threads = torch.get_num_threads()
    if device.type != 'cpu' or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class NCAccumulator:
    """Streaming sufficient statistics for :func:`neural_collapse_metrics`.

    Holds, in float64, the per-class counts ``n_k`` and feature sums
    ``s_k = sum_{y_i = k} h_i`` and the uncentred second moment
    ``S = sum_i h_i h_i^T``: memory ``O(K d + d^2)`` whatever the number of
    samples. Everything else follows from them, e.g.
    ``N Sigma_W = S - sum_k s_k s_k^T / n_k``. Float64 matters: late in
    training the within-class scatter is many orders of magnitude below
    ``S`` and that subtraction would cancel most digits of a float32 sum.

    NC4 needs each sample's distance to the *final* class means, so it takes a
    second pass: call :meth:`update` on all data (and sum
    :meth:`statistics` over ranks when distributed), then :meth:`update_ncc`
    on the same data (and sum :meth:`ncc_statistics`). Reusing the means of an earlier measurement
    instead would mix two models, so it is not offered.

    Args:
        num_classes (int): Number of classes ``K`` of the classifier.
        dim (int): Feature dimension ``d``.
        device (torch.device | str, optional): Where the statistics live;
            features are moved there. Defaults to the CPU.
    """

    def __init__(self, num_classes: int, dim: int, device=None):
        if num_classes < 2 or dim < 1:
            raise ValueError(f'NCAccumulator needs num_classes >= 2 and '
                             f'dim >= 1, got {num_classes} and {dim}.')
        self.num_classes = num_classes
        self.dim = dim
        kwargs = dict(dtype=torch.float64, device=device)
        self.counts = torch.zeros(num_classes, **kwargs)
        self.sums = torch.zeros(num_classes, dim, **kwargs)
        self.second_moment = torch.zeros(dim, dim, **kwargs)
        self.ncc_mismatches = torch.zeros((), **kwargs)
        self.ncc_samples = torch.zeros((), **kwargs)

    def _check_batch(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[1] != self.dim:
            raise ValueError(f'Expected features of shape (N, {self.dim}), '
                             f'got {tuple(features.shape)}.')
        return features.detach().to(self.sums.device, torch.float64)

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch to the counts, class sums and second moment.

        Args:
            features (torch.Tensor): ``(B, d)`` features.
            labels (torch.Tensor): ``(B,)`` integer labels in ``[0, K)``.
        """
        # The floor of this method is the d x d product below
        # (benchmarks/nc_accumulator.py); the cast to float64, the label
        # checks, the counts and the class sums are memory-bound passes over
        # B x d numbers, about 1 % of it on one thread. On the CPU they run
        # on one thread: each parallel region they would open has to wait
        # for every pool thread, and on a loaded machine (a thread
        # descheduled) that costs milliseconds each time, which made the
        # update 2-3x the product at 2 threads. The product keeps the pool.
        with _one_cpu_thread(self.sums.device):
            feats = self._check_batch(features)
            labels = self._check_labels(labels, feats.shape[0])
            if not labels.numel():
                return
            self.counts += torch.bincount(labels, minlength=self.num_classes)
            # The rows in batch order, as index_add_ would (same sums, bit
            # for bit), in one pass.
            self.sums.scatter_add_(0, labels[:, None].expand(-1, self.dim),
                                   feats)
        self.second_moment.addmm_(feats.T, feats)

    def _check_labels(self, labels: torch.Tensor,
                      num_features: int) -> torch.Tensor:
        """``labels`` as int64 on the statistics' device, checked against
        the batch size and ``[0, K)`` with one reduction and one sync."""
        labels = labels.detach().to(self.sums.device, torch.long).flatten()
        if labels.numel() != num_features:
            raise ValueError(f'Got {num_features} features but '
                             f'{labels.numel()} labels.')
        if labels.numel():
            low, high = torch.aminmax(labels)
            if ((low < 0) | (high >= self.num_classes)).item():
                raise ValueError(f'Labels must lie in [0, {self.num_classes}'
                                 f'); got [{low.item()}, {high.item()}]. '
                                 f'Check num_classes.')
        return labels

    def update_ncc(self,
                   features: torch.Tensor,
                   classifier: torch.Tensor,
                   bias: Optional[torch.Tensor] = None) -> None:
        """Second pass: count NCC-vs-classifier disagreements on a batch.

        Uses the class means of everything :meth:`update` has seen, so call it
        only once those are final (after summing :meth:`statistics` over
        ranks when distributed).

        Args:
            features (torch.Tensor): ``(B, d)`` features.
            classifier (torch.Tensor): ``(K, d)`` classifier rows.
            bias (torch.Tensor, optional): ``(K,)`` classifier bias.
        """
        if self.counts.sum() == 0:
            raise ValueError('update_ncc() needs the final class means: call '
                             'update() on all the data first.')
        feats = self._check_batch(features)
        weight = self._check_classifier(classifier)
        present = self.counts > 0
        means = self.sums / self.counts.clamp_min(1)[:, None]
        # ||h - mu_k||^2 up to the ||h||^2 term shared by every class.
        dists = (means * means).sum(1) - 2 * feats @ means.T
        dists[:, ~present] = float('inf')
        logits = feats @ weight.T
        if bias is not None:
            logits = logits + bias.detach().to(logits)
        mismatch = dists.argmin(1) != logits.argmax(1)
        self.ncc_mismatches += mismatch.sum()
        self.ncc_samples += feats.shape[0]

    def statistics(self) -> List[torch.Tensor]:
        """The tensors :meth:`update` accumulates (counts, class sums, second
        moment), to be summed in place over ranks by the caller after the
        last :meth:`update`, e.g. with ``mmengine.dist.all_reduce``. Every
        sample must be seen by exactly one rank (a sampler without padding),
        or duplicates are counted twice."""
        return [self.counts, self.sums, self.second_moment]

    def ncc_statistics(self) -> List[torch.Tensor]:
        """The tensors :meth:`update_ncc` accumulates, to be summed over
        ranks after the second pass."""
        return [self.ncc_mismatches, self.ncc_samples]

    def _check_classifier(self, classifier: torch.Tensor) -> torch.Tensor:
        if classifier.shape != (self.num_classes, self.dim):
            raise ValueError(
                f'Expected a classifier of shape ({self.num_classes}, '
                f'{self.dim}) (rows = classes, like nn.Linear.weight), got '
                f'{tuple(classifier.shape)}.')
        return classifier.detach().to(self.sums.device, torch.float64)

    def compute(self,
                classifier: Optional[torch.Tensor] = None,
                class_counts: Optional[Sequence[int]] = None,
                many_thr: float = 100,
                few_thr: float = 20) -> Dict[str, object]:
        """Compute the metrics of the module docstring from the statistics.

        Args:
            classifier (torch.Tensor, optional): ``(K, d)`` classifier rows;
                enables the classifier metrics, NC3 and the alignment.
            class_counts (Sequence[int], optional): ``(K,)`` *training* counts
                per class; enables the per-shot-group metrics.
            many_thr (float): Classes with more training samples are
                many-shot. Defaults to 100.
            few_thr (float): Classes with fewer training samples are few-shot
                (medium: the rest). Defaults to 20.

        Returns:
            dict: Float metrics, plus ``num_samples``, ``num_classes_present``
            and ``absent_classes`` (a list of class indices). With
            ``class_counts``, also ``mean_norm_ratio_<group>``: the mean norm
            ``||mu_k - mu_c||`` of the group's centred class means over that
            of all present classes (1 when every class mean is as far from
            the centre; the few-shot value falls below 1 when minority
            features shrink, as in Hong & Ling's UFM past the threshold).
        """
        present = self.counts > 0
        num_present = int(present.sum())
        result = dict(
            num_samples=int(self.counts.sum()),
            num_classes_present=num_present,
            absent_classes=(~present).nonzero().flatten().tolist())
        if num_present < 2:
            warnings.warn(f'Neural-collapse metrics need at least 2 classes '
                          f'in the measured data, got {num_present}; only '
                          f'the sample counts are returned.')
            return result
        counts = self.counts[present]
        sums = self.sums[present]
        centred = sums / counts[:, None]
        centred = centred - centred.mean(0)
        result['nc1'] = _nc1(centred, sums, counts, self.second_moment)
        result.update(_geometry(centred, suffix=''))
        if self.ncc_samples > 0:
            result['nc4'] = (self.ncc_mismatches / self.ncc_samples).item()
        if classifier is not None:
            weight = self._check_classifier(classifier)[present]
            result.update(_geometry(weight, suffix='_w'))
            result['nc3'] = (_frobenius_normalised(weight) -
                             _frobenius_normalised(centred)).square().sum(
                             ).item()
            wm_cos = _unit_rows(weight).mul(_unit_rows(centred)).sum(1)
            result['wm_cos'] = wm_cos.mean().item()
        if class_counts is not None:
            if len(class_counts) != self.num_classes:
                raise ValueError(f'class_counts has {len(class_counts)} '
                                 f'entries but there are {self.num_classes} '
                                 f'classes.')
            groups = shot_groups(class_counts, many_thr, few_thr)
            for name, indices in groups.items():
                members = torch.zeros_like(present)
                members[torch.as_tensor(indices, device=present.device)] = True
                members = members[present]
                if classifier is not None and members.any():
                    result[f'wm_cos_{name}'] = wm_cos[members].mean().item()
                if members.any():
                    result[f'mean_norm_ratio_{name}'] = _group_norm_ratio(
                        centred, members)
                if members.sum() >= 2:
                    result[f'mc_means_cos_{name}'] = _mean_pairwise_cos(
                        centred[members])
                    if classifier is not None:
                        result[f'mc_w_cos_{name}'] = _mean_pairwise_cos(
                            weight[members])
        return result


def neural_collapse_metrics(features: torch.Tensor,
                            labels: torch.Tensor,
                            num_classes: int,
                            classifier: Optional[torch.Tensor] = None,
                            class_counts: Optional[Sequence[int]] = None,
                            bias: Optional[torch.Tensor] = None,
                            many_thr: float = 100,
                            few_thr: float = 20) -> Dict[str, object]:
    """Neural-collapse metrics of a set of features, in one shot.

    See the module docstring for every formula. This is
    :class:`NCAccumulator` over a single batch, so a streaming measurement of
    the same data gives the same numbers.

    Args:
        features (torch.Tensor): ``(N, d)`` features fed to the classifier.
        labels (torch.Tensor): ``(N,)`` integer labels in ``[0, K)``.
        num_classes (int): Number of classes ``K``.
        classifier (torch.Tensor, optional): ``(K, d)`` classifier rows (the
            ETF buffer of ``ETFHead``, ``fc.weight`` of ``LinearClsHead``).
            Enables NC3, NC4 and the classifier metrics.
        class_counts (Sequence[int], optional): ``(K,)`` training counts per
            class, for the many/medium/few-shot metrics.
        bias (torch.Tensor, optional): ``(K,)`` classifier bias, used by NC4.
        many_thr (float): Many-shot threshold on the training counts.
            Defaults to 100.
        few_thr (float): Few-shot threshold on the training counts. Defaults
            to 20.

    Returns:
        dict: See :meth:`NCAccumulator.compute`.
    """
    if features.dim() != 2:
        raise ValueError(f'Expected (N, d) features, got shape '
                         f'{tuple(features.shape)}.')
    accumulator = NCAccumulator(
        num_classes, features.shape[1], device=features.device)
    accumulator.update(features, labels)
    if classifier is not None:
        accumulator.update_ncc(features, classifier, bias)
    return accumulator.compute(classifier, class_counts, many_thr, few_thr)


def _nc1(centred: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor,
         second_moment: torch.Tensor) -> float:
    """``tr(Sigma_W Sigma_B^+) / K`` without any ``d x d`` decomposition.

    The non-zero eigenpairs of ``Sigma_B = Mbar^T Mbar / K`` come from the
    small ``K x K`` Gram matrix: ``Mbar Mbar^T = U diag(lam) U^T`` gives
    eigenvalues ``lam_j / K`` with eigenvectors ``v_j = Mbar^T u_j /
    sqrt(lam_j)``. So the trace is ``sum_j (K / lam_j) v_j^T Sigma_W v_j``
    over the kept directions, and ``N v^T Sigma_W v = v^T S v - sum_k
    (s_k^T v)^2 / n_k``: ``O(K d^2 + K^3)``, never an ``O(d^3)`` pinv.
    """
    num_classes = centred.shape[0]
    eig_gram, eigvecs = torch.linalg.eigh(centred @ centred.T)
    keep = eig_gram > PINV_RCOND * eig_gram.max()
    directions = (eigvecs[:, keep].T @ centred) / eig_gram[keep].sqrt()[:,
                                                                        None]
    scatter = ((directions @ second_moment) * directions).sum(1)
    scatter -= ((sums @ directions.T).square() / counts[:, None]).sum(0)
    # S - sum s s^T / n is exact up to rounding, which may dip below zero
    eig_within = scatter.clamp_min(0) / counts.sum()
    eig_between = eig_gram[keep] / num_classes
    return (eig_within / eig_between).sum().item() / num_classes


def _group_norm_ratio(centred: torch.Tensor, members: torch.Tensor) -> float:
    """Mean norm of the centred class means of a group (``members``, a
    boolean mask over the present classes) over the mean of all of them."""
    norms = centred.norm(dim=1)
    return (norms[members].mean() / norms.mean().clamp_min(1e-300)).item()


def _unit_rows(vectors: torch.Tensor) -> torch.Tensor:
    # A zero row (all class means equal) gets cosine 0, not NaN.
    return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-300)


def _frobenius_normalised(matrix: torch.Tensor) -> torch.Tensor:
    return matrix / matrix.norm().clamp_min(1e-300)


def _off_diagonal_cos(vectors: torch.Tensor) -> torch.Tensor:
    unit = _unit_rows(vectors)
    cos = unit @ unit.T
    off_diagonal = ~torch.eye(
        len(vectors), dtype=torch.bool, device=vectors.device)
    return cos[off_diagonal]


def _mean_pairwise_cos(vectors: torch.Tensor) -> float:
    return _off_diagonal_cos(vectors).mean().item()


def _geometry(vectors: torch.Tensor, suffix: str) -> Dict[str, float]:
    """NC2 read-outs of ``K`` row vectors: equinorm, equiangle, ETF distance.
    """
    num_classes = len(vectors)
    norms = vectors.norm(dim=1)
    cos = _off_diagonal_cos(vectors)
    gram = vectors @ vectors.T
    simplex = torch.eye(num_classes, dtype=gram.dtype, device=gram.device)
    simplex = (simplex - 1.0 / num_classes) / math.sqrt(num_classes - 1)
    return {
        f'nc2_equinorm{suffix}':
        (norms.std() / norms.mean().clamp_min(1e-300)).item(),
        f'nc2_equiangle{suffix}':
        (cos + 1.0 / (num_classes - 1)).abs().mean().item(),
        f'nc2_cos_std{suffix}':
        cos.std().item(),
        f'nc2_etf_dist{suffix}':
        (_frobenius_normalised(gram) - simplex).norm().item(),
    }
