"""Sampling, scoring and weight pushes against ``vllm serve`` processes (separate servers, not a colocated engine).

- ``launch.VLLMServer``: start a ``vllm serve`` with the flags below (or connect to a running one).
- ``agentdistill.policies.server.ServerPolicy``: a ``Policy`` sampling token ids + log-probs from a server.
- ``teacher.ServerTeacher``: log-probs of given response ids under given prompts, from a server.
- ``weight_sync.ServerWeightSync``: push a training model's weights into a server (vLLM's weight-transfer API).
- ``disk_transfer``: the server-side ``disk`` weight-transfer engine, a vLLM general plugin.

Nothing here imports vLLM except ``disk_transfer`` (which only servers load); the trainer side needs httpx.
See docs/serving.md.
"""
