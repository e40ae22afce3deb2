"""Give every rank rank 0's buffers before anything evaluates the model."""
from mmengine.dist import broadcast, get_world_size
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class BroadcastBuffersHook(Hook):
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank at
    the end of each training epoch and before each validation.

    mmengine wraps models in ``MMDistributedDataParallel(broadcast_buffers=
    False)``, so during distributed training each rank's BatchNorm layers
    track running statistics of that rank's batches only. Everything that
    runs the model in eval mode on several ranks (the validation loop, whose
    shards each use their own rank's statistics, and
    ``NeuralCollapseHook``) then measures a mixture of models, none of which
    is the one ``CheckpointHook`` saves (rank 0's). With this hook they all
    measure exactly rank 0's model: a validation during training and
    ``tools/dist_test.sh`` or ``tools/test.py`` of the saved checkpoint give
    the same numbers.

    It broadcasts rather than averages (mmengine's ``SyncBuffersHook``), so
    rank 0, the checkpoints and the fixed ETF buffer keep their exact bits.
    Parameters are not touched: DDP keeps them identical already. Training
    itself is unaffected: in train mode BatchNorm normalises with batch
    statistics and only updates the running ones. A no-op outside
    distributed runs.

    Its priority ``ABOVE_NORMAL`` runs it after the epoch's training and
    before ``NeuralCollapseHook`` (``NORMAL``), ``CheckpointHook`` and the
    validation that follows.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_epoch(self, runner) -> None:
        self.broadcast_buffers(runner)

    def before_val_epoch(self, runner) -> None:
        # Iteration-based training validates without an epoch end.
        self.broadcast_buffers(runner)

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
