# Logit-adjusted loss (Menon et al., ICLR 2021) beside
# resnet32_cifar100lt_ce.py: the same network, recipe (Mixup) and data,
# trained with cross-entropy on logits + tau * log(prior). Menon et al.
# report 44.1 % on CIFAR-100-LT at imbalance 100 (their recipe, no Mixup).
# The prior is that of the training set the run uses (ClassCountsHook).
_base_ = ['./resnet32_cifar100lt_ce.py']

model = dict(head=dict(loss=dict(type='LogitAdjustedLoss', tau=1.0)))
