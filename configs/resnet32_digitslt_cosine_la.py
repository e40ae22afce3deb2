# Learnable cosine classifier + logit-adjusted cross-entropy on long-tailed
# digits: the control of resnet32_digitslt_etf_la.py. The same network, neck
# (BN + L2), logit scale (10), starting rows (the simplex ETF of the run's
# seed), data and schedule; only the class vectors are trained instead of
# fixed. tau = 1 is the value the digits study chose for this arm on
# held-out training images of its five tuning seeds, from
# {0.25, 0.5, 1, 1.5, 2, 3} (docs/results.md).
_base_ = ['./resnet32_digitslt_etf.py']

model = dict(
    head=dict(
        _delete_=True,
        type='CosineClsHead',
        num_classes=10,
        in_channels=64,
        seed=0,
        loss=dict(type='LogitAdjustedLoss', tau=1.0),
        topk=(1, )))
