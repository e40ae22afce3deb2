"""The unconstrained feature model (UFM) under class imbalance.

In the UFM the features are free variables, so the last layer can be studied
on its own. With ``N`` samples, ``n_k`` of class ``k``, features ``h_i``
(rows of ``H``), classifier rows ``w_k`` and optional bias ``b``, we minimise
(the convention of Hong & Ling's code: no 1/2 factors, the feature penalty
summed over all samples)::

    (1/N) sum_i loss(W h_i + b, y_i)
        + lambda_W ||W||_F^2 + lambda_H sum_i ||h_i||^2 + lambda_b ||b||^2

in one of three modes (:data:`UFM_MODES`):

- ``'learnable_ce'``: ``W`` (and ``b``) trained, cross-entropy;
- ``'etf_ce'``: ``W`` fixed to a unit simplex ETF, cross-entropy;
- ``'etf_dr'``: ``W`` fixed to a unit simplex ETF, dot-regression loss in the
  paper's form ``1/2 (w_y^T h - 1)^2`` (unit target length; the features are
  not normalised, because with weight decay on ``H`` the normalised loss has
  no minimiser: the norms would shrink to zero).

What is simulated: one free feature per sample, so NC1 is measured, not
built in. For any fixed ``W`` the problem separates into one strictly convex
problem per sample, identical for all samples of a class, so at a minimiser
all samples of class ``k`` share one feature ``h_k`` and the model is the
per-class problem with penalty ``lambda_H n_k ||h_k||^2``. Minimising over
the factorisations of the mean-logit matrix ``Z`` (row ``k`` = ``W h_k``)
turns it into Hong & Ling's convex program (:func:`solve_ufm_convex`)::

    (1/N) sum_k n_k CE(z_k + b, k) + lam ||D Z||_* + lambda_b ||b||^2,
    D = diag(sqrt(n_k)),  lam = 2 sqrt(lambda_W lambda_H).

Two more modes keep the ETF fixed but share the features through a
learnable layer (:data:`SHARED_MODES`): ``h_i = A u_i`` with a trained
``d x d`` matrix ``A`` (weight decay ``lambda_W``) and free ``u_i``
(``lambda_H``). The per-sample separability that protects the fixed ETF is
then gone: by the same factorisation identity the penalty is
``lam ||H||_*``, which couples the classes (:func:`shared_etf_threshold`).

Minority collapse (Fang et al. 2021): with ``k_major`` classes of
``n_major`` samples and ``k_minor`` of ``n_minor < n_major``, the learnable
classifier's minority class means merge once ``lam`` passes
:func:`minority_collapse_threshold`. A fixed ETF cannot move, and each
class's feature problem is the same up to the factor ``n_k``, so the minority
means keep the ETF angles (Yang et al. 2022).
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from etf_plugin.functional.dot_regression import dot_regression_loss
from etf_plugin.functional.etf import simplex_etf
from etf_plugin.functional.neural_collapse import neural_collapse_metrics

UFM_MODES = ('learnable_ce', 'etf_ce', 'etf_dr')
# Fixed ETF, but the features are shared through a learnable layer:
# h_i = A u_i with A (d x d) trained (weight decay lambda_W) and the u_i free
# (lambda_H); see :func:`shared_etf_threshold`.
SHARED_MODES = ('etf_ce_shared', 'etf_dr_shared')
ALL_MODES = UFM_MODES + SHARED_MODES


def minority_collapse_threshold(n_major: int, n_minor: int, k_major: int,
                                k_minor: int) -> float:
    """Nuclear-norm weight above which the minority classes collapse.

    In the convex form of the UFM (see the module docstring) the minority
    class means of a learnable CE classifier become identical iff
    ``lam >= sqrt(n_minor) / N`` with ``N = k_major n_major + k_minor
    n_minor``. At a point where they are identical, the part of the CE
    gradient that would separate them is ``sqrt(n_minor)/N`` times a matrix
    of spectral norm 1 orthogonal to both singular subspaces of ``D Z``; the
    nuclear-norm subgradient absorbs it iff ``lam`` is at least that large.
    (Derived in the project's research notes, section E3, and confirmed by
    :func:`solve_ufm_convex`.) Example: 5 + 5 classes of 500 and 100 samples
    give ``10 / 3000 = 0.00333``.

    Args:
        n_major (int): Samples per majority class.
        n_minor (int): Samples per minority class; less than ``n_major``.
        k_major (int): Number of majority classes (at least 1).
        k_minor (int): Number of minority classes (at least 2, or there is
            nothing to collapse).

    Returns:
        float: The threshold ``lam* = sqrt(n_minor) / N``, to compare with
        ``2 sqrt(lambda_W lambda_H)``.
    """
    if k_major < 1 or k_minor < 2:
        raise ValueError(f'Need k_major >= 1 and k_minor >= 2 classes, got '
                         f'{k_major} and {k_minor}.')
    if not 0 < n_minor < n_major:
        raise ValueError(f'Need 0 < n_minor < n_major, got n_minor={n_minor}'
                         f', n_major={n_major}: swap them if reversed.')
    total = k_major * n_major + k_minor * n_minor
    return math.sqrt(n_minor) / total


def train_ufm(class_counts: Sequence[int],
              feat_dim: int,
              lambda_w: float,
              lambda_h: float,
              mode: str = 'learnable_ce',
              lambda_b: Optional[float] = None,
              max_iter: int = 20000,
              grad_tol: float = 1e-8,
              init_std: float = 0.1,
              seed: int = 0,
              etf_seed: int = 0,
              dtype: torch.dtype = torch.float64,
              device: Optional[torch.device] = None) -> dict:
    """Minimise the UFM objective of the module docstring.

    Full-batch L-BFGS with a strong-Wolfe line search, in float64 by default.
    Plain gradient descent reaches the same point, but needs tens of
    thousands of steps where L-BFGS needs tens to hundreds; near the collapse
    threshold the critical direction is flat and even L-BFGS slows down (at
    exactly ``lam*`` it took about 17,600 iterations). The loop runs L-BFGS
    in rounds of 10 iterations and stops one round after the gradient norm of
    the whole objective falls below ``grad_tol`` (or a round no longer
    changes the objective), or after ``max_iter`` iterations; check
    ``converged``, ``grad_norm`` and ``objective_change``.

    Args:
        class_counts (Sequence[int]): Samples per class ``n_k``; the samples
            are ordered by class.
        feat_dim (int): Feature dimension ``d``. At least ``K`` for
            ``'learnable_ce'`` (so that ``W H`` can reach any mean-logit
            matrix), at least ``K - 1`` for the ETF modes.
        lambda_w (float): Weight decay ``lambda_W`` of ``W`` (of the shared
            layer ``A`` in the shared modes); unused by the other ETF modes,
            whose ``W`` is fixed.
        lambda_h (float): Weight decay ``lambda_H`` of every feature.
        mode (str): One of :data:`UFM_MODES` or :data:`SHARED_MODES`.
            Defaults to ``'learnable_ce'``.
        lambda_b (float, optional): Weight decay of a learnable bias;
            ``None`` (default) means no bias. Only for ``'learnable_ce'``.
        max_iter (int): Budget of L-BFGS iterations. Defaults to 20000.
        grad_tol (float): Gradient-norm tolerance. Defaults to 1e-8.
        init_std (float): Std of the Gaussian initialisation. Defaults to 0.1.
        seed (int): Seed of the initialisation. Defaults to 0.
        etf_seed (int): Seed of :func:`simplex_etf`. Defaults to 0.
        dtype (torch.dtype): Defaults to float64.
        device (torch.device, optional): Defaults to the CPU.

    Returns:
        dict: ``features`` ``(N, d)`` (``u_i A^T`` in the shared modes),
        ``labels`` ``(N,)``, ``classifier``
        ``(K, d)``, ``bias`` ``(K,)`` or None, and the convergence record
        ``objective``, ``grad_norm``, ``objective_change`` (the decrease
        over the last round: ~0 at a stationary point), ``iterations`` and
        ``converged``. Tensors are detached.
    """
    counts = _check_counts(class_counts)
    num_classes = len(counts)
    if mode not in ALL_MODES:
        raise ValueError(f'mode must be one of {ALL_MODES}, got {mode!r}.')
    if mode == 'learnable_ce' and feat_dim < num_classes:
        raise ValueError(f'feat_dim={feat_dim} < {num_classes} classes: the '
                         f'learnable UFM needs feat_dim >= num_classes to '
                         f'reach its convex optimum.')
    if mode != 'learnable_ce' and lambda_b is not None:
        raise ValueError(f'Mode {mode!r} has a fixed ETF classifier without '
                         f'bias: pass lambda_b=None.')
    if lambda_w < 0 or lambda_h <= 0:
        raise ValueError(f'Need lambda_w >= 0 and lambda_h > 0, got '
                         f'{lambda_w} and {lambda_h}.')

    device = torch.device('cpu') if device is None else device
    labels = torch.repeat_interleave(
        torch.arange(num_classes), torch.tensor(counts)).to(device)
    generator = torch.Generator().manual_seed(int(seed))

    def gaussian(*shape):
        # Drawn on the CPU so that a seed gives the same start on any device.
        return (init_std * torch.randn(
            *shape, generator=generator, dtype=dtype)).to(device)

    free = gaussian(len(labels), feat_dim).requires_grad_()
    params = [free]
    shared = None
    if mode in SHARED_MODES:
        # Starts near the identity, so the features start near the free
        # vectors, as in the separable modes.
        shared = (torch.eye(feat_dim, dtype=dtype, device=device) +
                  gaussian(feat_dim, feat_dim)).requires_grad_()
        params.append(shared)

    def current_features():
        return free if shared is None else free @ shared.T

    bias = None
    if mode == 'learnable_ce':
        classifier = gaussian(num_classes, feat_dim).requires_grad_()
        params.append(classifier)
        if lambda_b is not None:
            bias = torch.zeros(
                num_classes, dtype=dtype, device=device).requires_grad_()
            params.append(bias)
    else:
        classifier = simplex_etf(
            num_classes, feat_dim, seed=etf_seed, dtype=dtype).to(device)

    def objective():
        logits = current_features() @ classifier.T
        if bias is not None:
            logits = logits + bias
        if mode in ('etf_dr', 'etf_dr_shared'):
            loss = dot_regression_loss(logits, labels).mean()
        else:
            loss = F.cross_entropy(logits, labels)
        loss = loss + lambda_h * free.pow(2).sum()
        if mode == 'learnable_ce':
            loss = loss + lambda_w * classifier.pow(2).sum()
        if shared is not None:
            loss = loss + lambda_w * shared.pow(2).sum()
        if bias is not None:
            loss = loss + lambda_b * bias.pow(2).sum()
        return loss

    optimizer = torch.optim.LBFGS(
        params,
        lr=1,
        max_iter=10,
        max_eval=25,
        history_size=50,
        tolerance_grad=0.0,  # the outer loop owns the stopping rule
        tolerance_change=0.0,
        line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        value = objective()
        value.backward()
        return value

    iterations = 0
    previous = objective().item()
    change = math.inf
    grad_norm = math.inf
    stopping = False
    while iterations < max_iter:
        optimizer.step(closure)
        iterations = optimizer.state[free]['n_iter']
        value = closure().item()  # fresh gradients at the current point
        grad_norm = math.sqrt(sum(p.grad.pow(2).sum().item() for p in params))
        change, previous = previous - value, value
        if stopping:
            break
        # One more round once the test passes, so that objective_change
        # certifies a stationary point instead of measuring the descent.
        stopping = grad_norm < grad_tol or change == 0

    return dict(
        features=current_features().detach(),
        labels=labels,
        classifier=classifier.detach(),
        bias=None if bias is None else bias.detach(),
        objective=previous,
        grad_norm=grad_norm,
        objective_change=change,
        iterations=iterations,
        converged=grad_norm < grad_tol)


def solve_ufm_convex(class_counts: Sequence[int],
                     lam: float,
                     lambda_b: Optional[float] = None,
                     solver: str = 'SCS',
                     solver_options: Optional[dict] = None) -> dict:
    """Solve the convex program of the UFM with a learnable CE classifier.

    Minimises ``(1/N) sum_k n_k CE(z_k + b, k) + lam ||D Z||_* (+ lambda_b
    ||b||^2)`` over the ``K x K`` mean-logit matrix ``Z`` (see the module
    docstring); :func:`train_ufm` in mode ``'learnable_ce'`` with ``lam =
    2 sqrt(lambda_W lambda_H)`` reaches the same ``Z`` and objective. Needs
    ``cvxpy``.

    Args:
        class_counts (Sequence[int]): Samples per class ``n_k``.
        lam (float): Nuclear-norm weight ``2 sqrt(lambda_W lambda_H)``.
        lambda_b (float, optional): Bias weight decay; ``None`` (default)
            means no bias.
        solver (str): A cvxpy solver for an exponential-cone plus
            semidefinite program. Defaults to ``'SCS'``.
        solver_options (dict, optional): Keyword arguments of the solve.
            Defaults, for SCS, to ``eps_abs = eps_rel = 1e-10`` and 100,000
            iterations: SCS's own defaults (1e-4) leave mean-logit errors up
            to 2e-4, these bring them to the 1e-7 level, still in about a
            tenth of a second for ``K = 10``.

    Returns:
        dict: ``mean_logits`` (float64 tensor ``(K, K)``, row ``k`` = mean
        logit vector of class ``k`` without the bias), ``bias`` (tensor or
        None), ``objective`` and ``status``.
    """
    try:
        import cvxpy as cp
    except ImportError as error:
        raise ImportError('solve_ufm_convex needs cvxpy: pip install cvxpy'
                          ) from error
    counts = _check_counts(class_counts)
    num_classes, total = len(counts), sum(counts)
    mean_logits = cp.Variable((num_classes, num_classes))
    bias = None if lambda_b is None else cp.Variable(num_classes)
    loss = 0
    for k, n_k in enumerate(counts):
        logit = mean_logits[k]
        if bias is not None:
            logit = logit + bias
        loss = loss + n_k * (cp.log_sum_exp(logit) - logit[k])
    sqrt_counts = torch.tensor(counts, dtype=torch.float64).sqrt().numpy()
    objective = loss / total + lam * cp.normNuc(
        cp.diag(sqrt_counts) @ mean_logits)
    if bias is not None:
        objective = objective + lambda_b * cp.sum_squares(bias)
    problem = cp.Problem(cp.Minimize(objective))
    if solver_options is None and solver == 'SCS':
        solver_options = dict(eps_abs=1e-10, eps_rel=1e-10, max_iters=100000)
    problem.solve(solver=solver, **(solver_options or {}))
    if mean_logits.value is None:
        raise RuntimeError(f'cvxpy returned no solution (status '
                           f'{problem.status}); try solver="SCS".')
    return dict(
        mean_logits=torch.from_numpy(mean_logits.value),
        bias=None if bias is None else torch.from_numpy(bias.value),
        objective=float(problem.value),
        status=problem.status)


def class_means(features: torch.Tensor, labels: torch.Tensor,
                num_classes: int) -> torch.Tensor:
    """Mean feature of every class.

    Args:
        features (torch.Tensor): ``(N, d)`` features.
        labels (torch.Tensor): ``(N,)`` labels; every class must occur.
        num_classes (int): Number of classes ``K``.

    Returns:
        torch.Tensor: ``(K, d)`` class means.
    """
    counts = torch.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        raise ValueError('Every class needs at least one sample.')
    sums = features.new_zeros(num_classes, features.shape[1])
    sums.index_add_(0, labels, features)
    return sums / counts.unsqueeze(1).to(features.dtype)


def class_mean_logits(features: torch.Tensor, labels: torch.Tensor,
                      classifier: torch.Tensor) -> torch.Tensor:
    """Mean logit of every class without bias: row ``k`` is ``W mu_k``.

    The quantity :func:`solve_ufm_convex` optimises, so the two solutions can
    be compared.

    Args:
        features (torch.Tensor): ``(N, d)`` features.
        labels (torch.Tensor): ``(N,)`` labels; every class must occur.
        classifier (torch.Tensor): ``(K, d)`` classifier rows.

    Returns:
        torch.Tensor: ``(K, K)`` mean logits.
    """
    return class_means(features, labels, classifier.shape[0]) @ classifier.T


def ufm_collapse_metrics(result: dict, class_counts: Sequence[int]) -> dict:
    """Neural-collapse metrics of a :func:`train_ufm` solution.

    A thin call of :func:`neural_collapse_metrics` (the project's single
    definition of every metric) with the shot-group split placed halfway
    between the smallest and the largest class, so that in a two-size setting
    the majority classes are its ``'many'`` group and the minority classes
    its ``'few'`` group. The read-outs used by the UFM study are
    ``mc_means_cos_few`` (mean pairwise cosine of the minority class means,
    centred at the mean of the class means; ``-1/(K-1)`` on a simplex ETF,
    ``+1`` under minority collapse), ``mc_means_cos_many``, ``mc_w_cos_few``
    (Fang et al.'s classifier-side collapse), ``wm_cos`` (feature-classifier
    alignment), ``nc1``, the NC2 numbers and ``nc3``.

    Args:
        result (dict): Output of :func:`train_ufm`.
        class_counts (Sequence[int]): The counts it was trained with.

    Returns:
        dict: The metrics, see :func:`neural_collapse_metrics`.
    """
    counts = _check_counts(class_counts)
    split = (min(counts) + max(counts)) / 2
    return neural_collapse_metrics(
        result['features'],
        result['labels'],
        len(counts),
        classifier=result['classifier'],
        class_counts=counts,
        bias=result['bias'],
        many_thr=split,
        few_thr=split)


def shared_etf_threshold(n_major: int, n_minor: int, k_major: int,
                         k_minor: int) -> float:
    """Minority-collapse threshold of the fixed ETF + CE with shared
    features (mode ``'etf_ce_shared'``, no bias).

    With ``H = U A^T``, minimising ``lambda_W ||A||^2 + lambda_H ||U||^2``
    over the factorisations of ``H`` gives ``lam ||H||_*`` (``lam = 2
    sqrt(lambda_W lambda_H)``). At a minimiser the features lie in the span
    of the ETF (other directions add norm and no logit) and, by symmetry, are
    shared within a class, so with the mean logits ``Z = H_K W^T`` and ``W
    W^T = s (I - 11^T/K)``, ``s = K/(K-1)``, the nuclear norm is
    ``||D Z||_* / sqrt(s)`` for the centred ``Z`` that CE may assume. The
    problem is then Hong & Ling's convex program with weight ``lam /
    sqrt(s)``, which collapses the minority at ``sqrt(n_minor)/N``
    (:func:`minority_collapse_threshold`): here at ``lam = sqrt(K/(K-1))
    sqrt(n_minor)/N``. Our derivation; :func:`solve_ufm_convex` with
    ``lam / sqrt(s)`` gives the same mean logits (checked in the tests).

    Returns:
        float: The threshold on ``lam``.
    """
    num_classes = k_major + k_minor
    return math.sqrt(num_classes / (num_classes - 1)) * \
        minority_collapse_threshold(n_major, n_minor, k_major, k_minor)


def bisect_threshold(collapsed, lo: float, hi: float,
                     precision: float) -> dict:
    """Bracket where a monotone criterion switches from False to True.

    Args:
        collapsed (callable): ``x -> bool``; False at ``lo``, True at
            ``hi`` (checked).
        lo (float): A point below the switch.
        hi (float): A point above it.
        precision (float): Stop when ``hi - lo <= precision``.

    Returns:
        dict: ``lo`` and ``hi`` of the final bracket and ``steps``, the list
        of ``(x, collapsed)`` evaluations in order.
    """
    if not lo < hi or precision <= 0:
        raise ValueError(f'Need lo < hi and precision > 0, got {lo}, {hi}, '
                         f'{precision}.')
    steps = [(lo, bool(collapsed(lo))), (hi, bool(collapsed(hi)))]
    if steps[0][1] or not steps[1][1]:
        raise ValueError(f'The criterion must be False at lo={lo} and True '
                         f'at hi={hi}; got {steps[0][1]} and {steps[1][1]}.')
    while hi - lo > precision:
        mid = (lo + hi) / 2
        result = bool(collapsed(mid))
        steps.append((mid, result))
        if result:
            hi = mid
        else:
            lo = mid
    return dict(lo=lo, hi=hi, steps=steps)


def gradient_descent_race(class_counts: Sequence[int],
                          feat_dim: int,
                          lambda_h: float,
                          lr: float,
                          tol: float = 1e-3,
                          max_steps: int = 100000,
                          modes: Sequence[str] = ('etf_ce', 'etf_dr'),
                          init_std: float = 0.1,
                          seed: int = 0,
                          etf_seed: int = 0) -> dict:
    """Steps of plain gradient descent to the optimum of each fixed-ETF
    loss, from the same initialisation.

    The optimum of each mode is found first with :func:`train_ufm` (L-BFGS
    to a gradient norm of 1e-12); then full-batch gradient descent with the
    same step from the same start counts the steps until the features are
    within ``tol`` of it, ``||H_t - H*||_F <= tol ||H*||_F``. The objective
    is :func:`train_ufm`'s, whose per-sample gradient carries a factor
    ``1/N``, so the step is ``lr * N`` (``lr`` is per sample).

    Args:
        class_counts (Sequence[int]): Samples per class.
        feat_dim (int): Feature dimension.
        lambda_h (float): Weight decay of every feature.
        lr (float): Per-sample step size.
        tol (float): Relative distance to the optimum. Defaults to 1e-3.
        max_steps (int): Budget. Defaults to 100000.
        modes (Sequence[str]): Fixed-ETF modes to race.
        init_std (float): Std of the Gaussian start. Defaults to 0.1.
        seed (int): Seed of the start. Defaults to 0.
        etf_seed (int): Seed of the ETF. Defaults to 0.

    Returns:
        dict: ``{mode: {'steps' (None if not reached), 'final_distance',
        'optimum_norm'}}``.
    """
    counts = _check_counts(class_counts)
    num_classes, total = len(counts), sum(counts)
    labels = torch.repeat_interleave(torch.arange(num_classes),
                                     torch.tensor(counts))
    classifier = simplex_etf(num_classes, feat_dim, seed=etf_seed,
                             dtype=torch.float64)
    generator = torch.Generator().manual_seed(int(seed))
    start = init_std * torch.randn(len(labels), feat_dim,
                                   generator=generator, dtype=torch.float64)
    result = {}
    for mode in modes:
        if mode not in ('etf_ce', 'etf_dr'):
            raise ValueError(f'The race is between fixed-ETF modes, got '
                             f'{mode!r}.')
        optimum = train_ufm(counts, feat_dim, 0.0, lambda_h, mode=mode,
                            grad_tol=1e-12, init_std=init_std, seed=seed,
                            etf_seed=etf_seed)['features']
        scale = optimum.norm()
        features = start.clone().requires_grad_()
        steps = None
        distance = math.inf
        for step in range(max_steps + 1):
            distance = ((features.detach() - optimum).norm() / scale).item()
            if distance <= tol:
                steps = step
                break
            logits = features @ classifier.T
            loss = (dot_regression_loss(logits, labels).mean()
                    if mode == 'etf_dr' else F.cross_entropy(logits, labels))
            loss = loss + lambda_h * features.pow(2).sum()
            grad, = torch.autograd.grad(loss, features)
            with torch.no_grad():
                features -= lr * total * grad
            if not torch.isfinite(features).all():
                break
        result[mode] = dict(steps=steps, final_distance=distance,
                            optimum_norm=(optimum.norm(dim=1).mean()).item())
    return result


def first_crossing(xs: Sequence[float], ys: Sequence[float],
                   level: float) -> Optional[float]:
    """Where ``ys`` first reaches ``level``, linearly interpolated in ``xs``.

    Locates the simulated collapse threshold in a sweep, e.g. the ``lam /
    lam*`` at which the minority-means cosine first reaches 0.99.

    Args:
        xs (Sequence[float]): Increasing sweep values.
        ys (Sequence[float]): Read-out at each sweep value.
        level (float): Level to cross from below.

    Returns:
        float or None: The interpolated crossing; ``xs[0]`` if ``ys[0]``
        already reaches ``level``; None if it is never reached.
    """
    if len(xs) != len(ys):
        raise ValueError(f'xs and ys differ in length: {len(xs)} vs '
                         f'{len(ys)}.')
    for i, (x, y) in enumerate(zip(xs, ys)):
        if y >= level:
            if i == 0:
                return float(x)
            x0, y0 = xs[i - 1], ys[i - 1]
            return float(x0 + (level - y0) * (x - x0) / (y - y0))
    return None


def _check_counts(class_counts: Sequence[int]) -> list:
    counts = [int(n) for n in class_counts]
    if len(counts) < 2 or min(counts) < 1:
        raise ValueError(f'Need at least 2 classes with at least 1 sample '
                         f'each, got class_counts={counts}.')
    return counts
