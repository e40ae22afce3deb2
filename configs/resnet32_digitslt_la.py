# Logit-adjusted loss (Menon et al., ICLR 2021) beside resnet32_digitslt_ce.py:
# the same network, data and schedule, trained with cross-entropy on
# logits + tau * log(prior); plain argmax at test time. The prior is that of
# the training set the run uses (ClassCountsHook); see docs/baselines.md.
# tau = 1 (Menon et al.'s default) is also the value the digits study chose
# for this arm on held-out data of five tuning seeds, from
# {0.25, 0.5, 1, 1.5, 2, 3} (docs/results.md).
_base_ = ['./resnet32_digitslt_ce.py']

model = dict(head=dict(loss=dict(type='LogitAdjustedLoss', tau=1.0)))
