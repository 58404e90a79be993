"""In-context distillation with self-consistency cascades (deployment-time distillation).

So far: ``ledger`` (per-call tokens and dollars under an explicit billing model; break-even and savings) and
``agreement`` (when N student samples count as agreeing: normalised commands, code ASTs, API-call
signatures). Demo collection, retrieval and the cascade agent build on them.
"""
