# Logit-adjusted loss (Menon et al., ICLR 2021) beside resnet32_digitslt_ce.py:
# the same network, data and schedule, trained with cross-entropy on
# logits + tau * log(prior); plain argmax at test time.
# The prior is counted from this copy of the training set config: when you
# change the training set on the command line (imbalance ratio, seed), change
# it here too (model.head.loss.train_dataset.*); see docs/baselines.md.
_base_ = ['./resnet32_digitslt_ce.py']

model = dict(
    head=dict(
        loss=dict(
            type='LogitAdjustedLoss',
            tau=1.0,
            train_dataset=_base_.train_dataloader.dataset)))
