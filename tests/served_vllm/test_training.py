"""Training loops against real ``vllm serve`` processes: rollouts sampled by the package's server with the
weights pushed after every step (``rollout_engine=server``), and OPD whose teacher is a server started for the
run (``teacher_engine=server``) matching the in-process teacher.

Tolerances: the server's log-probs sit within 3e-5 of transformers on the same fp32 weights (test_server_policy),
so a synced sampler stays under the issue's 1e-3; the served teacher's step-1 loss and KL match the in-process
teacher's to 1e-4 absolute (measured on 2 cores: loss 9.6e-6 and mean_kl 1.6e-6 apart; sampler gap 1.2e-5 at
step 1 and 1.9e-6 at step 2).
"""

from __future__ import annotations

import httpx
import torch

from agentdistill.algos.opd import OPDConfig
from agentdistill.algos.opd import train as train_opd
from agentdistill.algos.pi_distill import PiDistillConfig
from agentdistill.algos.pi_distill import train as train_pi
from agentdistill.config import EnvConfig, EvalConfig, ModelConfig
from agentdistill.policies.server import ServerPolicy
from agentdistill.runs import read_metrics

from .conftest import MODEL

SYNCED = 1e-3
MATCH = 1e-4
SOKOBAN = EnvConfig("agentdistill/Sokoban-v0", max_turns=1, teacher_privileged=["expert_plan"])


def _restore(server, model, folder) -> None:
    """Leave the package's server as the fixture built it."""
    policy = ServerPolicy(server.url, weight_folder=folder)
    policy.load_weights(model)
    policy.close()


def test_pi_distill_samples_from_the_server_and_pushes_weights_every_step(server, hf, tmp_path):
    model, _, _ = hf
    cfg = PiDistillConfig(
        model=ModelConfig(MODEL, device="cpu", dtype="float32"), env=SOKOBAN,
        eval=EvalConfig(num_tasks=1, every=2, teacher_view=False), num_tasks=1, tasks_per_step=1, group_size=2,
        max_new_tokens=4, history_window=0, steps=2, lr=1e-2, out_dir=str(tmp_path / "run"), checkpoint_every=2,
        progress=False, rollout_engine="server", server_url=server.url,
        drop_zero_adv_groups=False)  # equal env rewards: train on the KL terms
    try:
        result = train_pi(cfg)
        version = int(httpx.get(f"{server.url}/weight_info").json()["weight_version"])
    finally:
        _restore(server, model, tmp_path / "restore")
    rows = read_metrics(result.run_dir)
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["trained_turns"] > 0
    for r in rows:  # step 2 sampled after the first update: a server left with the old weights is far off
        assert r["logprob_gap_max"] < SYNCED, r
    # pushes: the initial weights, after step 1, after step 2, and two evaluations (steps 0 and 2)
    assert version >= 3
    final = torch.load(result.run_dir / "checkpoints" / "step_000002" / "model.pt", weights_only=True)
    change = max(float((final[k] - v).abs().max()) for k, v in model.state_dict().items())
    assert change > 5e-3  # the update was large enough for the gap check to mean something
    assert [r["step"] for r in read_metrics(result.run_dir / "eval.jsonl")] == [0, 2]
    assert not list((result.run_dir / "server_weights").glob("*.safetensors"))  # the run removed its last file


def _opd(tmp_path, name: str, **overrides) -> OPDConfig:
    return OPDConfig(
        model=ModelConfig(MODEL, device="cpu", dtype="float32"), teacher_model=ModelConfig(MODEL),
        teacher_weight_noise=0.01, env=SOKOBAN, eval=EvalConfig(num_tasks=0), num_tasks=2, tasks_per_step=2,
        group_size=1, max_new_tokens=8, history_window=0, steps=1, lr=1e-3, temperature=1.0,
        out_dir=str(tmp_path / name), checkpoint_every=1, progress=False, **overrides)


def test_opd_with_a_served_teacher_matches_the_in_process_teacher(tmp_path):
    """The served teacher is started for the run from teacher_model and given the noised weights through the
    weight-transfer API; the in-process run loads the same noised weights. Same rollouts (HF, same seeds), so
    the step's loss and KL differ only by the server's kernel rounding."""
    local = read_metrics(train_opd(_opd(tmp_path, "local")).run_dir)[0]
    served_run = train_opd(_opd(tmp_path, "served", teacher_engine="server"))
    served = read_metrics(served_run.run_dir)[0]
    assert served["trained_turns"] == local["trained_turns"] > 0
    assert served["response_tokens"] == local["response_tokens"]
    assert local["mean_kl"] > 1e-3  # the noised teacher differs: a match means something
    for key in ("loss", "mean_kl"):
        assert abs(served[key] - local[key]) < MATCH, (key, served[key], local[key])
    assert (served_run.run_dir / "teacher_server.log").is_file()
    assert not list((served_run.run_dir / "teacher_weights").glob("*.safetensors"))
