# Post-hoc logit adjustment (Menon et al., ICLR 2021) of a model trained with
# resnet32_digitslt_ce.py: predictions use logits - tau * log(prior), no
# retraining. The prior is the one the checkpoint was trained with
# (ClassCountsHook saves it in the checkpoint). Test a CE checkpoint with it:
#   python tools/test.py configs/resnet32_digitslt_posthoc_la.py \
#       work_dirs/resnet32_digitslt_ce/epoch_60.pth \
#       [--cfg-options model.head.posthoc_tau=0.5]
_base_ = ['./resnet32_digitslt_ce.py']

model = dict(head=dict(type='PostHocLogitAdjustedHead', posthoc_tau=1.0))
