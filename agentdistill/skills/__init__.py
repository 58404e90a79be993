"""Skills for Skill-SD: the bank (the skills of the most similar tasks, then UCB), summarisers (template, LLM
endpoint, the training model) and the worker that runs summaries off the training thread."""

from agentdistill.skills.bank import Skill, SkillBank, SkillDraft
from agentdistill.skills.summarise import (
    LLMSummariser,
    ModelSummariser,
    Summariser,
    SummaryError,
    TemplateSummariser,
    parse_skill,
)
from agentdistill.skills.worker import SkillWorker

__all__ = ["LLMSummariser", "ModelSummariser", "Skill", "SkillBank", "SkillDraft", "SkillWorker", "Summariser",
           "SummaryError", "TemplateSummariser", "parse_skill"]
