"""Roll out a model and the env's expert on text Sokoban, with teacher views, and save the episodes.

    python examples/rollout_sokoban.py                 # the embedded SmolLM2-135M-Instruct, ~1 min on 2 CPU cores
    python examples/rollout_sokoban.py tiny-random     # a random 2-layer model, seconds
"""

import sys

from agentdistill import envs, load_episodes, save_episodes
from agentdistill.models import load_model
from agentdistill.policies import ExpertPolicy, HFPolicy
from agentdistill.rollout import rollout
from agentdistill.views import ViewSpec

ENV_ID = "agentdistill/Sokoban-v0"

if __name__ == "__main__":
    model, tokenizer = load_model(sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m-instruct")
    interface = envs.default_interface(ENV_ID)
    common = dict(
        seeds=range(4),  # four tasks (env seeds 0..3)
        group_size=2,  # two samples per task
        tokenizer=tokenizer,
        teacher_privileged=["expert_plan"],  # every turn also gets a teacher view with the optimal plan
        view=ViewSpec(history_window=2),
        max_turns=6,
    )
    student = rollout(ENV_ID, HFPolicy(model, tokenizer, temperature=0.7, max_new_tokens=16), **common)
    expert = rollout(ENV_ID, ExpertPolicy(interface), **common)
    for name, result in (("model", student), ("expert", expert)):
        print(f"{name}: success {result.metrics.success_rate:.2f}, mean turns {result.metrics.mean_turns:.1f}")

    turn = student.episodes[0].turns[0]
    print("student prompt:\n" + tokenizer.decode(turn.student_prompt_ids))
    extra = len(turn.teacher_prompt_ids) - len(turn.student_prompt_ids)
    print(f"the teacher view adds {extra} tokens of PI:\n" + interface.render_privileged(turn.privileged))
    print(f"reply {turn.response_text!r}: {len(turn.response_ids)} ids, sampler log-probs {turn.sampler_logprobs[:3]}")

    path = save_episodes("runs/example/episodes.jsonl", student.episodes + expert.episodes)
    assert load_episodes(path) == student.episodes + expert.episodes
    print(f"saved {len(student.episodes) + len(expert.episodes)} episodes to {path}")
