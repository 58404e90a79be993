"""One on-policy self-distillation step by hand: roll out the student, score its replies under the student view
and under a teacher view that sees the expert plan, and take a gradient step on reverse KL(student ‖ teacher).

    python examples/distill_step.py                  # tiny random model, seconds
    python examples/distill_step.py smollm2-135m-instruct

The trainers (`agentdistill/algos/`, e.g. `opsd_distill.py`) wrap these calls in a loop with
evaluation, checkpoints and metrics.
"""

import sys

import torch

from agentdistill.losses import iw_k3, reduce_loss
from agentdistill.models import load_model
from agentdistill.policies import HFPolicy
from agentdistill.rollout import rollout
from agentdistill.scoring import score_turns
from agentdistill.teachers import make_teacher
from agentdistill.views import ViewSpec

TEMPERATURE = 1.0

if __name__ == "__main__":
    model, tokenizer = load_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-random")
    policy = HFPolicy(model, tokenizer, temperature=TEMPERATURE, max_new_tokens=12)
    result = rollout(
        "agentdistill/Sokoban-v0", policy, seeds=range(2), group_size=2, tokenizer=tokenizer,
        teacher_privileged=["expert_plan"], view=ViewSpec(history_window=1), max_turns=3, progress=False,
    )
    turns = [t for episode in result.episodes for t in episode.turns]

    teacher = make_teacher("frozen", model)  # OPSD's teacher: the initial weights, conditioned on PI
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    student, teacher_scored = score_turns(model, teacher, turns, temperature=TEMPERATURE)
    sampler_logprobs_BT = torch.zeros_like(student.logprobs_BT)
    for row, turn in enumerate(turns):  # the sampler's own log-probs, for the importance weight
        sampler_logprobs_BT[row, : len(turn.sampler_logprobs)] = torch.tensor(turn.sampler_logprobs)

    per_token_BT = iw_k3(student.logprobs_BT, teacher_scored.logprobs_BT, sampler_logprobs_BT, student.mask_BT)
    loss = reduce_loss(per_token_BT, student.mask_BT, mode="token_mean")
    loss.backward()
    optimizer.step()
    print(f"{len(turns)} turns, {int(student.mask_BT.sum())} response tokens, reverse-KL estimate {loss.item():.3e}")
    drift = (student.logprobs_BT.detach() - sampler_logprobs_BT).abs()[student.mask_BT].max().item()
    print(f"max |scored − sampler log-prob| = {drift:.2e} (same ids, same temperature)")
