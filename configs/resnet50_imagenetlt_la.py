# Logit-adjusted loss (Menon et al., ICLR 2021) beside
# resnet50_imagenetlt_ce.py: the same network, recipe and data, trained with
# cross-entropy on logits + tau * log(prior). The prior is counted from the
# training list (labels only), read at the first iteration.
_base_ = ['./resnet50_imagenetlt_ce.py']

model = dict(
    head=dict(
        loss=dict(
            type='LogitAdjustedLoss',
            tau=1.0,
            train_dataset=_base_.train_dataloader.dataset)))
