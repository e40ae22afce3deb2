from typing import Iterator, Tuple

from mmengine.hooks import Hook
from mmdet.registry import HOOKS

from etf_plugin.utils import unwrap_model
from .dot_regression_loss import DetDotRegressionLoss
from .etf_predictor import ETFObjectnessPredictor, ETFPredictor
from .objectness_loss import ETFObjectnessLoss

# predictor class -> the loss_cls it needs (their scores only make sense
# together: the loss decides mmdet's activation)
PAIRS = {
    ETFObjectnessPredictor: ETFObjectnessLoss,
    ETFPredictor: DetDotRegressionLoss,
}


@HOOKS.register_module()
class RoIClassifierCheckHook(Hook):
    """Refuse, with the fix in the message, a detector whose RoI classifier
    does not match its data or its loss.

    Checked for every ``BBoxHead`` of the model (every stage of a Cascade
    R-CNN):

    - its ``num_classes`` against the number of classes of the dataset of
      the loop that starts (train, val or test). A dataset with one class
      more than the head would have its last class scored as background
      (mmdet's background index is ``num_classes``), and one with fewer
      would train vertices no RoI ever reaches; neither fails by itself.
    - an ETF predictor in ``fc_cls`` against its ``loss_cls``: mmdet takes
      the scores from the loss, so :class:`ETFObjectnessPredictor` needs
      :class:`ETFObjectnessLoss` and :class:`ETFPredictor` needs
      ``DotRegressionLoss``, and these losses need their predictor.

    It replaces mmdet's ``NumClassCheckHook`` for these heads, which also
    inspects every sub-module with a ``num_classes`` and so counts the
    ``K + 1`` vertices of ``ETFPredictor`` as classes.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        for name, head in _bbox_heads(runner.model):
            check_predictor_and_loss(head, name)

    def before_train(self, runner) -> None:
        self._check_classes(runner, runner.train_dataloader.dataset,
                            'training')

    def before_val(self, runner) -> None:
        self._check_classes(runner, runner.val_loop.dataloader.dataset,
                            'validation')

    def before_test(self, runner) -> None:
        self._check_classes(runner, runner.test_loop.dataloader.dataset,
                            'test')

    @staticmethod
    def _check_classes(runner, dataset, split: str) -> None:
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
        if classes is None:
            runner.logger.warning(
                f'RoIClassifierCheckHook: the {split} set '
                f'{type(dataset).__name__} names no classes in its metainfo; '
                f'the bbox heads\' num_classes is not checked against it.')
            return
        for name, head in _bbox_heads(runner.model):
            check_num_classes(head, name, classes, split,
                              type(dataset).__name__)


def _bbox_heads(model) -> Iterator[Tuple[str, object]]:
    from mmdet.models.roi_heads.bbox_heads import BBoxHead

    for name, module in unwrap_model(model).named_modules():
        if isinstance(module, BBoxHead):
            yield name, module


def _config_path(name: str) -> str:
    """``roi_head.bbox_head.0`` -> ``model.roi_head.bbox_head[0]``."""
    parts = []
    for part in name.split('.'):
        if part.isdigit():
            parts[-1] += f'[{part}]'
        else:
            parts.append(part)
    return '.'.join(['model'] + parts)


def check_num_classes(head, name: str, classes, split: str,
                      dataset_name: str) -> None:
    """Raise a ``ValueError`` unless ``head.num_classes == len(classes)``.

    Args:
        head (BBoxHead): The bbox head.
        name (str): Its module name in the model.
        classes (Sequence[str]): The dataset's class names.
        split (str): Which set, for the message.
        dataset_name (str): The dataset's type, for the message.
    """
    if head.num_classes == len(classes):
        return
    shown = ', '.join(map(str, classes[:8])) + (', ...'
                                                if len(classes) > 8 else '')
    raise ValueError(
        f'{_config_path(name)} has num_classes={head.num_classes}, but the '
        f'{split} set {dataset_name} has {len(classes)} classes ({shown}). '
        f'Set {_config_path(name)}.num_classes={len(classes)} (and the '
        f'same in every other head with classes), or give the dataset '
        f'metainfo=dict(classes=...) with the model\'s classes.')


def check_predictor_and_loss(head, name: str) -> None:
    """Raise a ``ValueError`` if an ETF predictor and ``loss_cls`` of
    ``head`` do not belong together.

    Args:
        head (BBoxHead): The bbox head.
        name (str): Its module name in the model.
    """
    predictor = getattr(head, 'fc_cls', None)
    loss = getattr(head, 'loss_cls', None)
    path = _config_path(name)
    for predictor_type, loss_type in PAIRS.items():
        if isinstance(predictor, predictor_type) and not isinstance(
                loss, loss_type):
            raise ValueError(
                f'{path} has cls_predictor_cfg type '
                f'{predictor_type.__name__} but loss_cls '
                f'{type(loss).__name__}: mmdet takes the scores from the '
                f'loss, so use loss_cls=dict(_delete_=True, type='
                f'\'{_registered_name(loss_type)}\').')
        if isinstance(loss, loss_type) and not isinstance(
                predictor, predictor_type):
            raise ValueError(
                f'{path} has loss_cls {_registered_name(loss_type)} but '
                f'cls_predictor_cfg type {type(predictor).__name__}: the '
                f'loss expects the output of {predictor_type.__name__}; set '
                f'cls_predictor_cfg=dict(type=\'{predictor_type.__name__}\').')


def _registered_name(cls) -> str:
    # DetDotRegressionLoss is registered as 'DotRegressionLoss'
    return 'DotRegressionLoss' if cls is DetDotRegressionLoss else cls.__name__
