"""``RankConsistencyHook``: every distributed rank classifies with the same
fixed ETF and evaluates rank 0's model."""
from mmengine.dist import broadcast, get_world_size
from mmengine.hooks import SyncBuffersHook
from mmpretrain.registry import HOOKS

from etf_plugin.utils import check_same_on_all_ranks, unwrap_model


@HOOKS.register_module()
class RankConsistencyHook(SyncBuffersHook):
    """MMEngine's ``SyncBuffersHook``, giving every rank rank 0's buffers
    instead of their mean, and checking that the fixed ETF is bit-identical
    on every rank once the checkpoint is loaded.

    Buffers, at the end of each training epoch and before a validation that
    no epoch end preceded (``SyncBuffersHook``'s schedule), and after
    training: mmengine wraps models in
    ``MMDistributedDataParallel(broadcast_buffers=False)``, so each rank's
    BatchNorm layers track running statistics of that rank's batches only,
    and everything that runs the model in eval mode on several ranks (the
    validation shards, ``NeuralCollapseHook``) would measure a mixture of
    models, none of which is the one the checkpoint holds (rank 0's).
    Broadcasting rather than averaging keeps rank 0, the checkpoints and the
    ETF buffer bit-exact, so a validation during training and a test of the
    saved checkpoint give the same numbers. Parameters are not touched (DDP
    keeps them identical), nor is training (BatchNorm normalises with batch
    statistics in train mode).

    The ETF, in ``before_train``, ``before_val`` and ``before_test``: these
    run after ``Runner.load_or_resume``, so the ETF checked is the one used
    (``before_run`` would be too early for ``Runner.test``). Every buffer
    named ``etf_vectors`` is compared with rank 0's by
    :func:`etf_plugin.utils.check_same_on_all_ranks`, which raises the same
    ``ValueError`` on every rank on a mismatch. Nothing else keeps that
    buffer in sync: each rank builds its ETF from the seed and loads
    ``load_from`` or the resumed checkpoint from its own file system, and
    checking here keeps ``ETFHead`` free of collectives.

    A no-op outside distributed runs. Its priority ``ABOVE_NORMAL`` runs the
    broadcast after the epoch's training and before ``NeuralCollapseHook``
    (``NORMAL``), the checkpoint hook and the validation that follows.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self):
        super().__init__()
        self._reported = False

    # ------------------------------------------------------------------
    # buffers
    def after_train_epoch(self, runner) -> None:
        self.broadcast_buffers(runner)
        self.called_in_train = True

    def before_val_epoch(self, runner) -> None:
        if not self.called_in_train:  # iteration-based training
            self.broadcast_buffers(runner)
        self.called_in_train = False

    def after_train(self, runner) -> None:
        # NeuralCollapseHook measures iteration-based runs here.
        self.broadcast_buffers(runner)

    def broadcast_buffers(self, runner) -> None:
        """Overwrite this rank's buffers with rank 0's.

        Args:
            runner (Runner): The runner.
        """
        if get_world_size() == 1:
            return
        # Every rank builds the model from the same config, so the buffers
        # come in the same order and the broadcasts pair up.
        for buffer in runner.model.buffers():
            broadcast(buffer, src=0)

    # ------------------------------------------------------------------
    # the ETF
    def before_train(self, runner) -> None:
        self.check_etf(runner)

    def before_val(self, runner) -> None:
        self.check_etf(runner)

    def before_test(self, runner) -> None:
        self.check_etf(runner)

    def check_etf(self, runner) -> None:
        """Compare every ``etf_vectors`` buffer of the runner's model with
        rank 0's copy.

        Args:
            runner (Runner): The runner.
        """
        if get_world_size() == 1:
            return
        names = []
        for name, buffer in unwrap_model(runner.model).named_buffers():
            if name.rsplit('.', 1)[-1] == 'etf_vectors':
                check_same_on_all_ranks(buffer, name)
                names.append(f'{name} {tuple(buffer.shape)}')
        if names and not self._reported:
            self._reported = True
            runner.logger.info(
                f'RankConsistencyHook: {", ".join(names)} bit-identical on '
                f'all {get_world_size()} ranks.')
