"""π-Distill from Python: train on Sokoban with the expert plan as PI, evaluate held-out levels from both
views before and after, resume, and print the report.

    python examples/train_pi_distill.py                  # tiny random model, about a minute
    python examples/train_pi_distill.py smollm2-135m-instruct

The command-line equivalent is ``agentdistill train algo=pi_distill env=sokoban model=<name>``.
"""

import sys
from dataclasses import replace

from agentdistill.algos.pi_distill import PiDistillConfig, train
from agentdistill.config import EnvConfig, EvalConfig, ModelConfig
from agentdistill.report import print_report

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "tiny-random"
    cfg = PiDistillConfig(
        model=ModelConfig(name),
        env=EnvConfig("agentdistill/Sokoban-v0", max_turns=4, teacher_privileged=["expert_plan"]),
        eval=EvalConfig(num_tasks=4, every=2),      # held-out levels: env seeds 1,000,000 ..
        alpha=0.5, beta=0.25,                       # π-Distill's paper defaults
        tasks_per_step=2, group_size=2, max_new_tokens=12, history_window=2,
        steps=2, checkpoint_every=2, lr=1e-5, progress=False,
        out_dir="runs/example-pi-distill",
    )
    train(cfg)
    # Asking for more steps resumes from the last checkpoint: same weights as one 4-step run.
    result = train(replace(cfg, steps=4))
    print(f"trained {result.final_step} steps; last loss {result.metrics['loss']:.4f}")
    print_report(result.run_dir)
