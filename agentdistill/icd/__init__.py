"""In-context distillation with self-consistency cascades (deployment-time distillation).

So far: ``ledger`` (per-call tokens and dollars under an explicit billing model; break-even and savings),
``agreement`` (when N student samples agree: normalised commands, code ASTs, API-call signatures) and
``retrieval`` (a demo index over the per-step records ``agentdistill collect`` writes to ``demos.jsonl``:
weighted multi-key similarity, ±w windows, never the evaluated task). The cascade agent and the
``agentdistill icd`` commands build on them.
"""
