"""Registry names of the first MMDetection design and of the three-key
configuration, kept only so that a config naming them fails with its
replacement in the message."""
from mmdet.registry import HOOKS, MODELS

_USE_HEAD = ('use the bbox head that builds the ETF predictor and its loss '
             'together: model = dict(roi_head=dict(bbox_head=dict('
             'type=\'ETFBBoxHead\'))), with no cls_predictor_cfg or '
             'loss_cls of its own (docs/mmdet.md)')
_BACKGROUND_VERTEX = (
    'the background-as-a-vertex design (ETFPredictor + DotRegressionLoss as '
    'an mmdet loss_cls) was retired, 0.28 mAP behind ETFBBoxHead\'s on the '
    'synthetic benchmark; its checkpoints need etf_plugin 0.1.0. For a new '
    'model, ' + _USE_HEAD)
RETIRED_MODELS = {
    'ETFPredictor': _BACKGROUND_VERTEX,
    # MMPretrain's loss stays reachable by its scope:
    # type='mmpretrain.DotRegressionLoss'
    'DotRegressionLoss': 'MMPretrain\'s classification loss is '
    'type=\'mmpretrain.DotRegressionLoss\' in an mmdet config; as an mmdet '
    'loss_cls, ' + _BACKGROUND_VERTEX,
    'ETFObjectnessPredictor': _USE_HEAD,
    'ETFObjectnessLoss': _USE_HEAD,
}
RETIRED_HOOKS = {
    'RoIClassifierCheckHook':
    'it existed for the retired ETFPredictor; use mmdet\'s own: '
    'custom_hooks = [dict(type=\'NumClassCheckHook\')]',
}


def _retired(name: str, replacement: str):

    def build(*args, **kwargs):
        raise ValueError(f'\'{name}\' is no longer part of etf_plugin.det: '
                         f'{replacement}.')

    return build


for _name, _replacement in RETIRED_MODELS.items():
    MODELS.register_module(name=_name, module=_retired(_name, _replacement))
for _name, _replacement in RETIRED_HOOKS.items():
    HOOKS.register_module(name=_name, module=_retired(_name, _replacement))
