"""Check at the start of every run that the fixed ETF is the same on every
distributed rank."""
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from etf_plugin.utils import check_same_on_all_ranks, unwrap_model


@HOOKS.register_module()
class ETFConsistencyHook(Hook):
    """Raise unless every fixed ETF classifier is bit-identical on all ranks.

    Every buffer of the model named ``etf_vectors`` (``ETFHead``'s fixed
    classifier) is compared with rank 0's copy by
    :func:`etf_plugin.utils.check_same_on_all_ranks`; a mismatch raises the
    same ``ValueError`` on every rank. A no-op outside distributed runs and
    for models without an ETF (e.g. the ``LinearClsHead`` baselines).

    Why a hook, and why these moments:

    - Nothing else keeps the buffer in sync. mmengine wraps the model in
      ``MMDistributedDataParallel(broadcast_buffers=False)``, which neither
      broadcasts buffers at construction nor at each forward, and
      ``tools/test.py`` never broadcasts weights at all. Each rank builds
      its ETF from the seed on its own machine, then loads ``load_from`` or
      the resumed checkpoint from its own file system.
    - ``before_train``, ``before_val`` and ``before_test`` run after
      ``Runner.load_or_resume``, so the checked ETF is the one that will be
      used. ``before_run`` would be too early: in ``Runner.test`` and
      ``Runner.val`` it runs before the checkpoint is loaded.
    - It keeps ``ETFHead`` free of collectives, which would hang any run in
      which only some ranks call the head (e.g. a rank-0-only analysis).

    The check costs one broadcast of a ``(K, d)`` tensor; during training it
    repeats before every validation, which is negligible next to it.

    Configs list it in ``custom_hooks`` (``configs/_base_/default_runtime.py``
    does), e.g. ``custom_hooks = [dict(type='ETFConsistencyHook')]``.
    """

    priority = 'VERY_HIGH'

    def __init__(self):
        self._reported = False

    def before_train(self, runner) -> None:
        self.check(runner)

    def before_val(self, runner) -> None:
        self.check(runner)

    def before_test(self, runner) -> None:
        self.check(runner)

    def check(self, runner) -> None:
        """Compare every ``etf_vectors`` buffer of the runner's model with
        rank 0's copy.

        Args:
            runner (Runner): The runner.
        """
        if get_world_size() == 1:
            return
        model = unwrap_model(runner.model)
        # Every rank builds the model from the same config, so the buffers
        # come in the same order and the collectives pair up.
        names = []
        for name, buffer in model.named_buffers():
            if name.rsplit('.', 1)[-1] == 'etf_vectors':
                check_same_on_all_ranks(buffer, name)
                names.append(f'{name} {tuple(buffer.shape)}')
        if names and not self._reported:
            self._reported = True
            runner.logger.info(
                f'ETFConsistencyHook: {", ".join(names)} bit-identical on '
                f'all {get_world_size()} ranks.')
