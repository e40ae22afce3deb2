# Logit-adjusted loss (Menon et al., ICLR 2021) beside
# resnet50_imagenetlt_ce.py: the same network, recipe and data, trained with
# cross-entropy on logits + tau * log(prior). The prior is that of the
# training list the run uses (ClassCountsHook).
_base_ = ['./resnet50_imagenetlt_ce.py']

model = dict(head=dict(loss=dict(type='LogitAdjustedLoss', tau=1.0)))
