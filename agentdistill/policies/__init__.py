"""Policies: anything that turns a batch of prompts into replies.

``base`` defines the ``Policy`` protocol and its records; ``hf`` samples from a transformers model;
``vllm`` from a colocated vLLM engine (import it from ``agentdistill.policies.vllm``); ``scripted`` holds
the expert and random policies. ``HFPolicy`` is imported lazily so that importing this
package never imports torch.
"""

from agentdistill.policies.base import Completion, Policy, Prompt, sample_seed
from agentdistill.policies.scripted import ExpertPolicy, RandomPolicy

__all__ = ["Completion", "ExpertPolicy", "HFPolicy", "Policy", "Prompt", "RandomPolicy", "sample_seed"]


def __getattr__(name: str) -> type:
    if name == "HFPolicy":
        from agentdistill.policies.hf import HFPolicy

        return HFPolicy
    raise AttributeError(name)
