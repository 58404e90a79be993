"""In-context distillation with self-consistency cascades (deployment-time distillation; docs/icd.md).

- ``agent``: ``IcdAgent``, a ``Policy`` that retrieves teacher demos into a cheap student's prompt every step,
  samples it N times and defers the step to the teacher when the samples disagree; it plays every arm of an
  experiment (teacher only, student only, ICD, ICD + cascade) and prices every call; ``priced_teacher``
  bills a teacher that reports no cost (the env expert) for ``agentdistill collect price_as=...``.
- ``retrieval``: a demo index over the per-step records ``agentdistill collect`` writes to ``demos.jsonl``
  (MiniLM or hashing embeddings, weighted multi-key similarity, ±w windows, never the evaluated task).
- ``agreement``: when N samples agree (normalised commands, code ASTs, API-call signatures).
- ``ledger``: per-call tokens and dollars under an explicit billing model; break-even and savings.
- ``run`` and ``report``: ``agentdistill icd run`` and ``agentdistill icd report``.
"""

from agentdistill.icd.agent import IcdAgent, RetrievalSpec, StepRecord, priced_teacher
from agentdistill.icd.agreement import agree
from agentdistill.icd.ledger import BillingModel, Call, Ledger, break_even_episodes, savings_after
from agentdistill.icd.retrieval import DemoIndex, HashingEmbedder, MiniLMEmbedder, load_demos

__all__ = ["BillingModel", "Call", "DemoIndex", "HashingEmbedder", "IcdAgent", "Ledger", "MiniLMEmbedder",
           "RetrievalSpec", "StepRecord", "agree", "break_even_episodes", "load_demos", "priced_teacher",
           "savings_after"]
