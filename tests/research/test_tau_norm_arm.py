"""τ-normalisation as the study runs it (replaces tests/tools/test_tau_norm.py:
the tool is gone, τ-norm is TauNormalizedHead at predict time, swept on the
held-out split with tools/test.py --heldout N)."""
import os.path as osp

import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from research import study

REPO = study.REPO
CE = osp.join(REPO, 'configs', 'resnet32_digitslt_ce.py')
TAU = osp.join(REPO, 'configs', 'resnet32_digitslt_tau_norm.py')


def build(config, **head):
    cfg = Config.fromfile(config)
    cfg.model.head.update(head)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def ce_state_dict():
    """A CE model whose classifier rows have norms 1 ... 10 and a bias."""
    state_dict = build(CE).state_dict()
    weight = state_dict['head.fc.weight']
    scale = torch.arange(1, 11, dtype=weight.dtype)[:, None]
    state_dict['head.fc.weight'] = weight / weight.norm(
        dim=1, keepdim=True) * scale
    state_dict['head.fc.bias'] = torch.linspace(-1, 1, 10)
    return state_dict


def predict_scores(model, x):
    data = [DataSample().set_gt_label(0) for _ in range(len(x))]
    return torch.stack([s.pred_score for s in model.predict(x, data)])


def test_a_ce_checkpoint_loads_strictly_and_is_tau_normalised():
    state_dict = ce_state_dict()
    x = torch.randn(4, 1, 8, 8)
    for tau in (0.0, 0.5, 1.0):
        model = build(TAU, tau=tau)
        model.load_state_dict(state_dict, strict=True)
        model.eval()
        feats = model.extract_feat(x)[-1]
        weight = state_dict['head.fc.weight']
        expected = feats @ (weight / weight.norm(dim=1, keepdim=True)
                            ** tau).t()  # the bias is dropped
        assert torch.allclose(predict_scores(model, x),
                              expected.softmax(1), atol=1e-5)
    # tau = 0 with the bias kept is the CE model itself
    plain = build(CE)
    plain.load_state_dict(state_dict)
    kept = build(TAU, tau=0.0, keep_bias=True)
    kept.load_state_dict(state_dict)
    plain.eval(), kept.eval()
    assert torch.allclose(predict_scores(plain, x), predict_scores(kept, x),
                          atol=1e-6)
    # the checkpoint's keys are unchanged: it loads back into the CE config
    assert set(kept.state_dict()) == set(state_dict)


def test_tau_is_chosen_on_heldout_images_only():
    method = study.METHODS['tau_norm']
    assert method.parent == 'ce' and method.knob.stage == 'test'
    assert method.knob.key == 'model.head.tau'
    cfg = study.build_config(method, study.Task('eval', 'tau_norm', 0.01, 0),
                             '/tmp/x', load_from='ce.pth')
    # the sweep's loader is the held-out split of the training split; the
    # test split is only the val loader, used once with the chosen tau
    assert cfg.test_dataloader.dataset.split == 'heldout'
    assert cfg.test_dataloader.dataset.dataset.split == 'train'
    assert cfg.val_dataloader.dataset.split == 'test'
