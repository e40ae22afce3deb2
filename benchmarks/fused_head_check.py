"""The fused path of the normalised heads against their eager path, on a
device: one training step each, from the same weights and batch.

On CUDA the heads' default ``fused='auto'`` takes the fused path; the check
prints which path ran, and the largest differences of the loss, the input
gradient, the parameters' gradients and the BatchNorm running statistics
(fp32, and bf16 autocast with ``--amp``). On a CPU it forces ``fused=True``
(``'auto'`` keeps the eager path there).

    python benchmarks/fused_head_check.py [--device cuda|cpu] [--amp]
"""
import argparse
import contextlib

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import etf_plugin  # noqa: F401

NUM_CLASSES, DIM, BATCH = 1000, 2048, 256
COUNTS = [max(1, round(1000 * 0.995**k)) for k in range(NUM_CLASSES)]
CASES = {
    'ETFHead + DR': ('ETFHead', dict(type='DotRegressionLoss')),
    'ETFHead + CB-DR': ('ETFHead', dict(type='DotRegressionLoss',
                                        class_balanced=True)),
    'ETFHead + CE': ('ETFHead', dict(type='CrossEntropyLoss')),
    'CosineClsHead + LA': ('CosineClsHead',
                           dict(type='LogitAdjustedLoss',
                                class_counts=COUNTS)),
}


def build(head_type, loss, fused, device):
    loss = dict(loss)
    if loss['type'] == 'DotRegressionLoss':
        loss['fused'] = fused
    torch.manual_seed(0)
    return MODELS.build(
        dict(type=head_type, num_classes=NUM_CLASSES, in_channels=DIM,
             loss=loss, fused=fused)).to(device).train()


def group_of(key):
    """The table column of a tensor of :func:`train_step`."""
    if key in ('loss', 'input grad'):
        return key
    return 'param grads' if key.startswith('grad ') else 'running stats'


def train_step(head, feats, samples, autocast):
    feats = feats.clone().requires_grad_()
    with autocast():
        loss = head.loss((feats, ), samples)['loss']
    loss.backward()
    tensors = {'loss': loss.detach(), 'input grad': feats.grad}
    tensors.update({f'grad {name}': p.grad
                    for name, p in head.named_parameters()})
    tensors.update({name: b for name, b in head.state_dict().items()
                    if 'running' in name})
    return tensors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', action='store_true',
                        help='bfloat16 autocast and bfloat16 features')
    args = parser.parse_args()
    device = torch.device(args.device)
    fused = 'auto' if device.type == 'cuda' else True
    dtype = torch.bfloat16 if args.amp else torch.float32

    def autocast():
        if not args.amp:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    feats = torch.randn(BATCH, DIM, device=device).to(dtype)
    samples = [DataSample().set_gt_label(int(y)).to(device)
               for y in torch.randint(NUM_CLASSES, (BATCH, ))]
    print(f'Fused ({fused!r}) against eager (False): device={device} '
          f'{"bf16 autocast" if args.amp else "fp32"}, batch {BATCH}, '
          f'{DIM}-d, {NUM_CLASSES} classes; largest absolute difference '
          f'relative to the eager tensor\'s largest magnitude')
    print('| head + loss | fused ran | loss | input grad | param grads | '
          'running stats |')
    print('|---|---|---|---|---|---|')
    for name, (head_type, loss) in CASES.items():
        fused_head = build(head_type, loss, fused, device)
        eager_head = build(head_type, loss, False, device)
        ran = fused_head.classifier.uses_fused(feats)
        got = train_step(fused_head, feats, samples, autocast)
        want = train_step(eager_head, feats, samples, autocast)
        groups = {column: [] for column in ('loss', 'input grad',
                                            'param grads', 'running stats')}
        for key, value in want.items():
            error = ((got[key].float() - value.float()).abs().max() /
                     value.float().abs().max().clamp(min=1e-30)).item()
            groups[group_of(key)].append(error)
        print(f'| {name} | {ran} | ' + ' | '.join(
            f'{max(v):.1e}' for v in groups.values()) + ' |')


if __name__ == '__main__':
    main()
