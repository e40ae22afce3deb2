"""Research code of the repository, kept out of the installable package
(as MMPretrain keeps ``projects/`` out of ``mmpretrain/``): the long-tailed
digits study and the docs it generates, the unconstrained-feature-model
simulator, and the detection benchmark. It runs experiments, reads
``configs/`` and writes ``docs/``, so it needs a clone; its command lines
are ``tools/analysis/{digits_study,make_docs,ufm_simulation}.py`` and
``benchmarks/det_long_tail.py``, its tests ``tests/research/``."""
