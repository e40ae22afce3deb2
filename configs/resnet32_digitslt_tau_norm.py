# tau-normalisation (Kang et al., ICLR 2020) of a model trained with
# resnet32_digitslt_ce.py: predictions with w_k / ||w_k||^tau, no bias, no
# retraining. Choose tau on 20 held-out images per class of the training
# split that the long-tailed subset left out (--heldout), never on the test
# split, then test the best one:
#   for tau in 0 0.25 0.5 0.75 1; do
#     python tools/test.py configs/resnet32_digitslt_tau_norm.py \
#         work_dirs/resnet32_digitslt_ce/epoch_60.pth --heldout 20 \
#         --cfg-options model.head.tau=$tau
#   done
#   python tools/test.py configs/resnet32_digitslt_tau_norm.py \
#       work_dirs/resnet32_digitslt_ce/epoch_60.pth --cfg-options model.head.tau=BEST
_base_ = ['./resnet32_digitslt_ce.py']

model = dict(head=dict(type='TauNormalizedHead', tau=1.0))
