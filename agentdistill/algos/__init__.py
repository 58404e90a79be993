"""Training loops, one file per algorithm, each exposing ``train(cfg) -> RunResult``.

- ``sft``         supervised fine-tuning on expert action traces (SFT without chain of thought)
- ``grpo``        GRPO on env reward (group-centred advantages, PPO clip, truncation reward 0)
- ``opd``         on-policy distillation from a separate teacher model (sampled-token, full-vocab or top-k)
- ``opsd``        on-policy self-distillation: ``mode="reward"`` (π-Distill paper's OPSD, R − β·KL) or
                  ``mode="distill"`` (Self-Distilled Reasoner: per-token divergence to a frozen PI view)
- ``pi_distill``  π-Distill: α·J_teacher + (1−α)·J_student, rollouts from the PI-conditioned view
- ``common``      the helpers two or more loops share: run directories, metrics, checkpoints, micro-batching

Import the loop you need from its module (``from agentdistill.algos.sft import SFTConfig, train``); this
package itself imports nothing heavy.
"""
