"""Neural-collapse (NC) metrics from streaming sufficient statistics.

Notation: ``h_i`` the measured feature (the head's ``pre_logits``, or any
other stage), ``y_i`` its label, ``N`` samples, ``K`` classes *present* in
the measured data, ``n_k`` their counts, ``mu_k`` the class means, ``W`` the
classifier rows ``w_k`` (``K x d``), ``b`` its bias,
``v_k = (1/n_k) sum_{y_i = k} ||h_i - mu_k||^2`` the within-class variance
of class ``k`` (trace of its covariance).

Centring under imbalance. Every centred quantity uses the *mean of the class
means* ``mu_c = (1/K) sum_k mu_k`` (each class weighs the same), not the
sample-weighted global mean ``mu_G = (1/N) sum_i h_i``. With imbalanced
classes ``mu_G`` leans toward the head classes: class means that sit exactly
on a centred simplex ETF would, centred at ``mu_G``, no longer be equinorm or
equiangular, and a perfect collapse would read as non-ETF. ``Mbar`` below is
the ``K x d`` matrix of rows ``mu_k - mu_c``. On balanced data ``mu_c = mu_G``
and every metric is the usual one.

NC1, within-class variability collapse, in the three forms of the literature
(all with ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`` and
``Sigma_B = (1/K) Mbar^T Mbar``, each class weighing ``1/K``):

- ``nc1 = tr(Sigma_W Sigma_B^+) / K`` (Papyan, Han & Donoho, PNAS 2020;
  Zhu et al., NeurIPS 2021). The pseudo-inverse drops eigenvalues of
  ``Sigma_B`` below ``1e-10`` times the largest (``PINV_RCOND``, the
  ``rcond`` of Hong & Ling's code): directions that weak are classes merged
  by minority collapse, and the within-class variance along them, a
  difference of large streamed sums, is rounding noise there.
- ``nc1_svd``: the same trace on the top ``min(K - 1, d)`` eigen-directions
  of ``Sigma_B`` with no cut-off (the "SVD" variant of Han et al., ICLR
  2022, and of the ``neural-collapse`` package of R. Wu, ``covariance_pinv``
  with ``svd=True``). It grows without bound when fewer than ``K - 1``
  directions separate the class means (minority collapse).
- ``nc1_ratio = tr(Sigma_W) / tr(Sigma_B)``, the trace quotient (Tirer,
  Huang & Niles-Weed, ICML 2023): no inverse at all, so no cut-off.

CDNV, class-distance normalised variance (Galanti, Gyorgy & Hutter, ICLR
2022, "On the role of neural collapse in transfer learning"):
``cdnv = mean_{k < k'} (v_k + v_k') / (2 ||mu_k - mu_k'||^2)`` over all pairs
of present classes; ``cdnv_<group>`` the same mean over the pairs inside one
shot group. It needs only the per-class sums of ``||h_i||^2`` on top of the
NC1 statistics, and is invariant to rotating (and to scaling) all features.

NC2, convergence of the centred class means to a simplex ETF:

- ``nc2_equinorm = std_k ||Mbar_k|| / mean_k ||Mbar_k||`` (Papyan; sample
  std, ``torch.std``'s default).
- ``nc2_equiangle = mean_{k != k'} |cos(Mbar_k, Mbar_k') + 1/(K-1)|``
  (Papyan's "maximal angle"): the spread of the pairwise cosines around the
  simplex value ``-1/(K-1)``; ``nc2_cos_std = std_{k != k'} cos(Mbar_k,
  Mbar_k')`` is Papyan's equiangularity.
- ``nc2_etf_dist = || G/||G||_F - (I_K - 11^T/K)/sqrt(K-1) ||_F`` with
  ``G = Mbar Mbar^T`` (Zhu et al.; distance of the Gram matrices, the target
  has unit Frobenius norm).
- ``nc2_nearest_etf_dist = min_E || Mbar/||Mbar||_F - E ||_F`` over every
  simplex ETF ``E`` of unit Frobenius norm in ``R^d``, i.e. over all
  rotations of the ETF (the distance to the *nearest* ETF of Markou et al.,
  NeurIPS 2024, "Guiding neural collapse"; here solved in closed form
  rather than by Riemannian optimisation). Writing ``E = A R`` with ``A``
  a fixed ``K x (K-1)`` ETF basis and ``R`` a ``(K-1) x d`` matrix with
  orthonormal rows, it is an orthogonal Procrustes problem whose minimum is
  ``sqrt(2 - 2 ||P X||_* / sqrt(K-1))``, ``X`` the normalised matrix,
  ``P = I - 11^T/K`` and ``||.||_*`` the nuclear norm. 0 for an ETF in any
  orientation, at most ``sqrt(2)``. Needs ``d >= K - 1`` (no simplex ETF
  exists below), left out otherwise.
- ``nc2_erank``: the effective rank ``exp(-sum_j p_j log p_j)``,
  ``p_j = sigma_j / sum sigma`` over the singular values of ``Mbar`` (Roy &
  Vetterli, EUSIPCO 2007): ``K - 1`` for a simplex ETF, smaller when class
  means crowd into fewer directions; meaningful also where ``d < K - 1`` or
  ``K`` is large and no ETF fits.
- With a classifier: ``nc2_equinorm_w``, ``nc2_equiangle_w``,
  ``nc2_cos_std_w``, ``nc2_etf_dist_w`` and ``nc2_nearest_etf_dist_w`` for
  the raw rows ``w_k`` (all zero for a fixed ETF).

NC3, self-duality, with a classifier:
``nc3 = || W/||W||_F - Mbar/||Mbar||_F ||_F^2`` (Papyan), and
``wm_cos = mean_k cos(w_k, Mbar_k)``, the feature-classifier alignment.

NC4, as Papyan et al. define it: the fraction of samples on which the
nearest-class-centre rule ``argmin_k ||h_i - mu_k||`` (present classes)
disagrees with the classifier's prediction ``argmax_k (w_k^T h_i + b_k)``
(all classes). (Zhu et al.'s code calls the bias collapse
``||W mu_G + b||`` "NC4"; that is not this metric.) It needs the *final*
class means for every sample, which sums alone cannot give; see
:class:`NCAccumulator`.

Minority collapse, with the *training* class counts ``class_counts`` split
into many (``n > 100``), medium (``20 <= n <= 100``) and few (``n < 20``)
shots by default: per group ``g``, ``mc_means_cos_g`` (mean pairwise cosine
of the centred class means; tends to ``+1`` when the group's features
collapse together), ``mc_w_cos_g`` (the same for the classifier rows: Fang
et al., PNAS 2021, minority collapse), ``wm_cos_g``, ``mean_norm_ratio_g``
(mean ``||Mbar_k||`` of the group over that of all present classes),
``w_norm_ratio_g`` (the same for ``||w_k||``) and ``cdnv_g``.

Classes absent from the measured data are left out of every formula (``K``
counts present classes only) and listed under ``absent_classes``; a metric
that needs more classes than are present (e.g. a pairwise cosine within a
group of one class) is left out of the result rather than returned as NaN.
"""
import math
import warnings
from typing import Dict, List, Optional, Sequence

import torch

from .long_tail import shot_groups

# Relative cut-off of the pseudo-inverse in NC1 (see the module docstring).
PINV_RCOND = 1e-10


class NCAccumulator:
    """Streaming sufficient statistics for :func:`neural_collapse_metrics`.

    Holds, in float64, the per-class counts ``n_k``, feature sums
    ``s_k = sum_{y_i = k} h_i`` and sums of squared norms
    ``q_k = sum_{y_i = k} ||h_i||^2``, and the uncentred second moment
    ``S = sum_i h_i h_i^T``: ``2 K + K d + d^2`` numbers whatever the number
    of samples. Everything else follows from them, e.g.
    ``N Sigma_W = S - sum_k s_k s_k^T / n_k`` and
    ``n_k v_k = q_k - ||s_k||^2 / n_k``. Float64 matters: late in training the
    within-class scatter is many orders of magnitude below ``S`` and that
    subtraction would cancel most digits of a float32 sum.

    NC4 needs each sample's distance to the *final* class means: call
    :meth:`update` on all data (and sum :meth:`statistics` over ranks when
    distributed), then :meth:`update_ncc` on the same features (and sum
    :meth:`ncc_statistics`). The caller either keeps the features of the
    first pass or computes them again. Reusing the means of an earlier
    measurement instead would mix two models, so it is not offered.

    The methods use torch's thread pool as the caller set it; on a loaded
    CPU the caller may prefer one thread (see
    :func:`etf_plugin.engine.neural_collapse.collect_nc_statistics`).

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
        self.sq_norms = torch.zeros(num_classes, **kwargs)
        self.second_moment = torch.zeros(dim, dim, **kwargs)
        self.ncc_mismatches = torch.zeros((), **kwargs)
        self.ncc_samples = torch.zeros((), **kwargs)

    def _check_batch(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[1] != self.dim:
            raise ValueError(f'Expected features of shape (N, {self.dim}), '
                             f'got {tuple(features.shape)}.')
        return features.detach().to(self.sums.device, torch.float64)

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch to the counts, class sums, squared norms and second
        moment.

        Args:
            features (torch.Tensor): ``(B, d)`` features.
            labels (torch.Tensor): ``(B,)`` integer labels in ``[0, K)``.
        """
        feats = self._check_batch(features)
        labels = self._check_labels(labels, feats.shape[0])
        if not labels.numel():
            return
        self.counts += torch.bincount(labels, minlength=self.num_classes)
        # The rows in batch order, as index_add_ would (same sums, bit for
        # bit), in one pass.
        self.sums.scatter_add_(0, labels[:, None].expand(-1, self.dim),
                               feats)
        self.sq_norms.scatter_add_(0, labels, feats.square().sum(1))
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
        """Count NCC-vs-classifier disagreements (NC4) on a batch of the
        measured features (kept from :meth:`update`'s pass or recomputed).

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
        moment, squared norms), to be summed in place over ranks by the
        caller after the last :meth:`update`, e.g. with
        ``mmengine.dist.all_reduce``. Every
        sample must be seen by exactly one rank (a sampler without padding),
        or duplicates are counted twice."""
        return [self.counts, self.sums, self.second_moment, self.sq_norms]

    def ncc_statistics(self) -> List[torch.Tensor]:
        """The tensors :meth:`update_ncc` accumulates, to be summed over
        ranks after its last call."""
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
            dict: Float metrics (see the module docstring), plus
            ``num_samples``, ``num_classes_present`` and ``absent_classes``
            (a list of class indices).
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
        means = sums / counts[:, None]
        centred = means - means.mean(0)
        # n_k v_k = q_k - ||s_k||^2 / n_k is exact up to rounding, which may
        # dip below zero.
        variances = (self.sq_norms[present] - sums.square().sum(1) / counts
                     ).clamp_min(0) / counts
        result.update(_nc1_forms(centred, sums, counts, self.second_moment,
                                 variances))
        cdnv = _pairwise_cdnv(means, variances)
        result['cdnv'] = _upper_mean(cdnv)
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
        if class_counts is None:
            return result
        if len(class_counts) != self.num_classes:
            raise ValueError(f'class_counts has {len(class_counts)} entries '
                             f'but there are {self.num_classes} classes.')
        groups = shot_groups(class_counts, many_thr, few_thr)
        for name, indices in groups.items():
            members = torch.zeros_like(present)
            members[torch.as_tensor(indices, device=present.device)] = True
            members = members[present]
            if not members.any():
                continue
            result[f'mean_norm_ratio_{name}'] = _group_norm_ratio(
                centred, members)
            if classifier is not None:
                result[f'wm_cos_{name}'] = wm_cos[members].mean().item()
                result[f'w_norm_ratio_{name}'] = _group_norm_ratio(
                    weight, members)
            if members.sum() < 2:
                continue
            result[f'cdnv_{name}'] = _upper_mean(cdnv[members][:, members])
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


def _nc1_forms(centred: torch.Tensor, sums: torch.Tensor,
               counts: torch.Tensor, second_moment: torch.Tensor,
               variances: torch.Tensor) -> Dict[str, float]:
    """``nc1``, ``nc1_svd`` and ``nc1_ratio`` without any ``d x d``
    decomposition.

    The non-zero eigenpairs of ``Sigma_B = Mbar^T Mbar / K`` come from the
    small ``K x K`` Gram matrix: ``Mbar Mbar^T = U diag(lam) U^T`` gives
    eigenvalues ``lam_j / K`` with eigenvectors ``v_j = Mbar^T u_j /
    sqrt(lam_j)``. So ``tr(Sigma_W Sigma_B^+)`` is ``sum_j (K / lam_j)
    v_j^T Sigma_W v_j`` over the kept directions, and ``N v^T Sigma_W v =
    v^T S v - sum_k (s_k^T v)^2 / n_k``: ``O(K d^2 + K^3)``, never an
    ``O(d^3)`` pinv.
    """
    num_classes = centred.shape[0]
    num_samples = counts.sum()
    eig_gram, eigvecs = torch.linalg.eigh(centred @ centred.T)  # ascending
    top = min(num_classes - 1, centred.shape[1])
    # The pinv's directions, and the top K - 1 whatever their size; both
    # are the largest eigenvalues, so one set of directions serves both.
    pinv_keep = int((eig_gram > PINV_RCOND * eig_gram[-1]).sum())
    used = max(pinv_keep, top)
    eig = eig_gram[-used:]
    directions = (eigvecs[:, -used:].T @ centred) / eig.clamp_min(
        1e-300).sqrt()[:, None]
    scatter = ((directions @ second_moment) * directions).sum(1)
    scatter -= ((sums @ directions.T).square() / counts[:, None]).sum(0)
    # S - sum s s^T / n is exact up to rounding, which may dip below zero
    ratios = (scatter.clamp_min(0) / num_samples) / (
        eig.clamp_min(1e-300) / num_classes)
    trace_within = (counts * variances).sum() / num_samples
    trace_between = eig_gram.clamp_min(0).sum() / num_classes
    return dict(
        nc1=ratios[-pinv_keep:].sum().item() / num_classes,
        nc1_svd=ratios[-top:].sum().item() / num_classes,
        nc1_ratio=(trace_within / trace_between.clamp_min(1e-300)).item())


def _pairwise_cdnv(means: torch.Tensor,
                   variances: torch.Tensor) -> torch.Tensor:
    """``(v_k + v_k') / (2 ||mu_k - mu_k'||^2)`` for every pair, ``K x K``
    (the diagonal is meaningless)."""
    sq_dists = torch.cdist(means, means).square()
    return (variances[:, None] + variances[None, :]) / (
        2 * sq_dists.clamp_min(1e-300))


def _upper_mean(pairwise: torch.Tensor) -> float:
    """Mean of a symmetric matrix over its pairs ``k < k'``."""
    rows, cols = torch.triu_indices(
        *pairwise.shape, offset=1, device=pairwise.device)
    return pairwise[rows, cols].mean().item()


def _group_norm_ratio(centred: torch.Tensor, members: torch.Tensor) -> float:
    """Mean norm of the rows of a group (``members``, a boolean mask over
    the present classes) over the mean norm of all rows."""
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
    """NC2 read-outs of ``K`` row vectors: equinorm, equiangle, ETF
    distances; the effective rank for the class means (``suffix=''``)."""
    num_classes = len(vectors)
    norms = vectors.norm(dim=1)
    gram = vectors @ vectors.T
    # the cosines from the same K x K x d product (a zero row gets 0)
    off_diagonal = ~torch.eye(
        num_classes, dtype=torch.bool, device=vectors.device)
    cos = (gram / torch.outer(norms, norms).clamp_min(1e-300))[off_diagonal]
    simplex = torch.eye(num_classes, dtype=gram.dtype, device=gram.device)
    simplex = (simplex - 1.0 / num_classes) / math.sqrt(num_classes - 1)
    result = {
        f'nc2_equinorm{suffix}':
        (norms.std() / norms.mean().clamp_min(1e-300)).item(),
        f'nc2_equiangle{suffix}':
        (cos + 1.0 / (num_classes - 1)).abs().mean().item(),
        f'nc2_cos_std{suffix}':
        cos.std().item(),
        f'nc2_etf_dist{suffix}':
        (_frobenius_normalised(gram) - simplex).norm().item(),
    }
    # ||P X||_* with X = vectors / ||vectors||_F (module docstring): the
    # singular values of the row-centred vectors, from the eigenvalues of
    # their Gram P G P (O(K^3), no SVD of the K x d matrix). Eigenvalues at
    # its rounding level (the structural zero of the centring, and any
    # direction with no spread) count as zero.
    centred_gram = (gram - gram.mean(0, keepdim=True) -
                    gram.mean(1, keepdim=True) + gram.mean())
    eig = torch.linalg.eigvalsh(centred_gram)
    rounding = 10 * num_classes * torch.finfo(eig.dtype).eps * eig[-1]
    singular = torch.where(eig > rounding, eig, 0).sqrt()
    if vectors.shape[1] >= num_classes - 1:
        nuclear = singular.sum() / vectors.norm().clamp_min(1e-300)
        result[f'nc2_nearest_etf_dist{suffix}'] = (
            2 - 2 * nuclear / math.sqrt(num_classes - 1)).clamp_min(
                0).sqrt().item()
    if not suffix:
        weights = singular / singular.sum().clamp_min(1e-300)
        entropy = -(weights * weights.clamp_min(1e-300).log()).sum()
        result['nc2_erank'] = entropy.exp().item()
    return result
