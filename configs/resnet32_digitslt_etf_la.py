# Fixed simplex ETF + logit-adjusted cross-entropy (Menon et al., ICLR 2021)
# on long-tailed digits: the network, neck (BN + L2), logit scale (10), data
# and schedule of resnet32_digitslt_etf.py, with ETFHead passing its scaled
# cosines 10 * cos to LogitAdjustedLoss (cross-entropy on
# logits + tau * log(prior), the prior from ClassCountsHook). tau = 2 is the
# value the digits study chose on held-out training images of its tuning
# seeds, from {0.5, 1, 1.5, 2} (docs/results.md); it is the ETF recipe the
# study's held-out data chose among the ETF arms.
_base_ = ['./resnet32_digitslt_etf.py']

model = dict(
    head=dict(loss=dict(_delete_=True, type='LogitAdjustedLoss', tau=2.0)))
