"""Training loops, one file per algorithm, each exposing ``train(cfg) -> RunResult``.

- ``sft``     supervised fine-tuning on expert action traces (SFT without chain of thought)
- ``common``  the helpers two or more loops share: run directories, metrics, checkpoints, micro-batching

Import the loop you need from its module (``from agentdistill.algos.sft import SFTConfig, train``); this
package itself imports nothing heavy.
"""
