"""The state-quantization accuracy study (``python -m quant.study``; docs/study.md).

Modules: :mod:`.workloads` (synthetic state-update inputs per model family),
:mod:`.runner` (variants — fp32 reference, fake-quant, the exact SPE datapath — the error
metric and the lock-step runner), :mod:`.plan` (the runs of ``study all``), :mod:`.report`
(tables, atomic output), :mod:`.plots`, :mod:`.mamba2_hook` (transformers' Mamba-2 generation
step through the quantized state update), :mod:`.textmodel` (the trained Mamba-2 and its
corpus) and :mod:`.perplexity` (its perplexity through every state format).
"""
