"""``ClassCountsHook``: the one place the training samples per class are
read, handed out and saved."""
from typing import List, Optional, Sequence

import numpy as np
from mmengine.hooks import Hook
from mmengine.registry import DATASETS
from mmpretrain.registry import HOOKS

from etf_plugin.datasets.utils import training_class_counts
from etf_plugin.functional.long_tail import check_class_counts
from etf_plugin.utils import num_classes_of, unwrap_model
from etf_plugin.utils.class_counts import load_class_counts

CHECKPOINT_KEY = 'class_counts'  # in checkpoint['meta']


@HOOKS.register_module()
class ClassCountsHook(Hook):
    """Give every count-aware component the training samples per class of
    the run, and save them with each checkpoint.

    The logit-adjusted loss, the post-hoc logit-adjusted head, the
    ``LongTailAccuracy`` shot groups and the ``NeuralCollapseHook`` groups
    all need the training counts, and none of them can see the training
    set. Copying the training set into each of their configs goes stale as
    soon as the training set is changed on the command line. Instead this
    hook reads the counts once, from the training set the runner actually
    uses (``metainfo['class_counts']`` of ``LongTailDataset``, else the
    labels, see :func:`~etf_plugin.datasets.training_class_counts`), and
    calls ``set_class_counts`` on every model module, metric and hook that
    has it (:class:`~etf_plugin.utils.class_counts.ClassCountsConsumer`).

    The counts are saved in ``checkpoint['meta']['class_counts']``, so that
    testing a checkpoint (``tools/test.py``, ``dist_test.sh``, MMPretrain's
    own ``test.py``) uses the prior the model was trained with, with no
    training set in the config. Where they come from:

    - training (and resuming): the runner's training set; a resumed
      checkpoint with other counts is refused (the loss would change mid-run);
    - testing or validating a checkpoint: the checkpoint's counts, else the
      training set of the config (labels only, no image is read);
    - ``class_counts=[...]`` or ``counts_file=PATH`` here override both.

    A count-aware component given its own ``class_counts`` keeps them.

    Args:
        class_counts (Sequence[int], optional): Counts to use instead of the
            training set's.
        counts_file (str, optional): File with one count per line, instead.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 class_counts: Optional[Sequence[int]] = None,
                 counts_file: Optional[str] = None):
        self.counts = load_class_counts(
            class_counts, counts_file, owner='ClassCountsHook')
        self._checkpoint_counts = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        counts = checkpoint.get('meta', {}).get(CHECKPOINT_KEY)
        if counts is not None:
            self._checkpoint_counts = check_class_counts(
                counts, owner='The checkpoint\'s class counts')

    def before_train(self, runner) -> None:
        if self.counts is None:
            self.counts = training_class_counts(
                runner.train_dataloader.dataset, num_classes_of(runner.model))
            resumed = self._checkpoint_counts
            if runner._resume and resumed is not None and not np.array_equal(
                    resumed, self.counts):
                raise ValueError(
                    f'The resumed checkpoint was trained on class counts '
                    f'{resumed.tolist()} but this run\'s training set has '
                    f'{self.counts.tolist()}. Resume with the training set '
                    f'of the checkpoint, or start a new run (load_from=... '
                    f'instead of --resume).')
        self._hand_out(runner, runner.train_loop)

    def before_val(self, runner) -> None:
        self._hand_out(runner, runner.val_loop)

    def before_test(self, runner) -> None:
        self._hand_out(runner, runner.test_loop)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.counts is not None:
            checkpoint.setdefault('meta', {})[CHECKPOINT_KEY] = \
                self.counts.tolist()

    def _hand_out(self, runner, loop) -> None:
        consumers = self._consumers(runner, loop)
        if not consumers:
            return
        if self.counts is None:
            self.counts = self._counts_for_evaluation(runner, consumers)
        num_classes = num_classes_of(runner.model)
        check_class_counts(self.counts, num_classes, owner='ClassCountsHook')
        for consumer in consumers:
            consumer.set_class_counts(self.counts)

    def _counts_for_evaluation(self, runner, consumers) -> np.ndarray:
        if self._checkpoint_counts is not None:
            return self._checkpoint_counts
        train_cfg = runner.cfg.get('train_dataloader')
        dataset_cfg = train_cfg.get('dataset') if train_cfg else None
        if dataset_cfg is None:
            names = sorted({type(c).__name__ for c in consumers})
            raise ValueError(
                f'{", ".join(names)} need the training samples per class, but '
                f'the checkpoint has none saved (it was not trained with '
                f'ClassCountsHook) and the config has no train_dataloader to '
                f'count them from. Add the training set to the config, or '
                f'give the counts: --cfg-options "custom_hooks.<i>.'
                f'class_counts=[...]" (or counts_file=PATH) for the '
                f'ClassCountsHook entry.')
        dataset = DATASETS.build(dataset_cfg) if isinstance(
            dataset_cfg, dict) else dataset_cfg
        runner.logger.info(
            'ClassCountsHook: the checkpoint has no class counts; counting '
            'the labels of the config\'s training set.')
        return training_class_counts(dataset, num_classes_of(runner.model))

    @staticmethod
    def _consumers(runner, loop) -> List[object]:
        model = unwrap_model(runner.model)
        consumers = [m for m in model.modules() if _consumes(m)]
        consumers += [h for h in runner.hooks if _consumes(h)]
        evaluator = getattr(loop, 'evaluator', None)
        consumers += [m for m in getattr(evaluator, 'metrics', []) if
                      _consumes(m)]
        return consumers


def _consumes(obj) -> bool:
    return callable(getattr(obj, 'set_class_counts', None))
