"""Skill-SD on tiny Sokoban: cold start then skills, the skill never in a student prompt, resume with the bank,
the loss's two terms, and the usefulness signal."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from agentdistill import envs
from agentdistill.algos import skill_sd
from agentdistill.algos.grpo import grpo_loss
from agentdistill.algos.skill_sd import SkillSDConfig, skill_sd_loss, train, usefulness
from agentdistill.config import EnvConfig, EvalConfig, ModelConfig
from agentdistill.policies import RandomPolicy
from agentdistill.rollout import rollout
from agentdistill.runs import read_metrics
from agentdistill.skills import SkillBank, SkillDraft

SOKOBAN = "agentdistill/Sokoban-v0"
CANARY = "ZEBRA-CANARY-7731"


def _rewards_from_ids(episodes, truncation_reward):
    """Rewards that differ within a group (the tiny model never wins), so advantages and usefulness are live."""
    return torch.tensor([float(sum(ep.turns[0].response_ids) % 3) for ep in episodes], dtype=torch.float64)


@pytest.fixture()
def varied_reward(monkeypatch):
    monkeypatch.setattr(skill_sd, "episode_rewards", _rewards_from_ids)


def _cfg(tmp_path, name: str, **overrides) -> SkillSDConfig:
    base = SkillSDConfig(model=ModelConfig("tiny-random", device="cpu", dtype="float32"),
                         env=EnvConfig(SOKOBAN, max_turns=2), eval=EvalConfig(num_tasks=0), num_tasks=4,
                         tasks_per_step=2, group_size=2, max_new_tokens=6, steps=2, lr=1e-3, lam=0.5,
                         async_summaries=False, max_tokens_per_microbatch=2000, seed=0,
                         out_dir=str(tmp_path / name), checkpoint_every=1, progress=False)
    return replace(base, **overrides)


def test_cold_start_then_skills_are_created_selected_and_used(tmp_path, varied_reward):
    result = train(_cfg(tmp_path, "smoke"))
    first, second = read_metrics(result.run_dir)
    assert first["skill_coverage"] == 0.0 and first["loss_sdl"] == 0.0  # cold start: an empty bank
    assert first["skills_created"] == first["bank_size"] == 2.0  # one per task, from step 1's episodes
    assert second["skills_created"] == 4.0 and second["skill_coverage"] == 1.0
    assert second["skill_tokens_fraction"] == 1.0 and second["loss_sdl"] > 0.0
    assert second["bank_selections"] == 2.0 and first["summaries_failed"] == 0.0
    bank = SkillBank.from_dict(json.loads((result.run_dir / "skills.json").read_text()))
    assert len(bank.skills) == 4  # two more made from step 2's episodes
    assert all(s.summariser == "template" and s.source_episodes for s in bank.skills.values())
    assert sum(s.selections for s in bank.skills.values()) == 2


def _planted_bank(path) -> str:
    bank = SkillBank()
    bank.add(SkillDraft(f"push with {CANARY}", "none", ("left",)), family=SOKOBAN, task="Push every box onto a target.",
             source_episodes=[], step=0,
             summariser="test")
    path.write_text(json.dumps(bank.to_dict()))
    return str(path)


def test_the_skill_never_reaches_a_student_prompt(tmp_path, monkeypatch):
    seen_student, seen_teacher = [], []
    original_round, original_view = skill_sd.rollout_round, skill_sd.teacher_view_ids

    def spy_round(*args, **kwargs):
        result = original_round(*args, **kwargs)
        seen_student.extend(t.student_prompt_ids for ep in result.episodes for t in ep.turns)
        assert all(t.teacher_prompt_ids is None for ep in result.episodes for t in ep.turns)
        return result

    def spy_view(*args, **kwargs):
        ids = original_view(*args, **kwargs)
        seen_teacher.append(ids)
        return ids

    monkeypatch.setattr(skill_sd, "rollout_round", spy_round)
    monkeypatch.setattr(skill_sd, "teacher_view_ids", spy_view)
    cfg = _cfg(tmp_path, "canary", steps=1, initial_skills=_planted_bank(tmp_path / "bank.json"),
               eval=EvalConfig(num_tasks=1, teacher_view=False))
    train(cfg)
    from agentdistill.models import load_tokenizer

    tokenizer = load_tokenizer("tiny-random")
    assert seen_student and seen_teacher
    assert all(CANARY in tokenizer.decode(ids) for ids in seen_teacher)
    assert not any(CANARY in tokenizer.decode(ids) for ids in seen_student)


def test_resume_continues_with_the_same_bank(tmp_path, varied_reward):
    straight = train(_cfg(tmp_path, "straight", steps=4))
    first = train(_cfg(tmp_path, "resumed", steps=2))
    resumed = train(_cfg(tmp_path, "resumed", steps=4))
    assert first.final_step == 2 and resumed.final_step == 4

    def bank(run):
        data = json.loads((run.run_dir / "skills.json").read_text())
        return [{k: v for k, v in s.items() if k != "created_at"} for s in data["skills"]]

    assert bank(resumed) == bank(straight)
    rows_s, rows_r = read_metrics(straight.run_dir), read_metrics(resumed.run_dir)
    assert [r["step"] for r in rows_r] == [1, 2, 3, 4]
    for a, b in zip(rows_s, rows_r, strict=False):
        for key in ("loss", "loss_sdl", "grad_norm", "bank_size", "skill_coverage", "bank_mean_usefulness"):
            assert a[key] == pytest.approx(b[key], abs=1e-6), key
    w_s = torch.load(straight.run_dir / "checkpoints" / "step_000004" / "model.pt", weights_only=True)
    w_r = torch.load(resumed.run_dir / "checkpoints" / "step_000004" / "model.pt", weights_only=True)
    assert all(torch.allclose(w_s[k], w_r[k], atol=1e-6) for k in w_s)


@pytest.fixture(scope="module")
def turns(tiny):
    model, tokenizer = tiny
    from agentdistill.policies import HFPolicy

    result = rollout(SOKOBAN, HFPolicy(model, tokenizer, temperature=1.0, max_new_tokens=5), seeds=[0, 1],
                     tokenizer=tokenizer, max_turns=1, progress=False)
    return [t for ep in result.episodes for t in ep.turns]


def test_without_skills_the_loss_is_grpo_and_with_an_equal_teacher_the_kl_is_zero(tiny, turns):
    model, _ = tiny
    adv = [1.0, -0.5]
    n = sum(len(t.response_ids) for t in turns)
    kwargs = dict(normalizer=n, temperature=1.0, clip_low=0.2, clip_high=0.28)
    plain = grpo_loss(model, turns, adv, **kwargs).detach()
    assert float(skill_sd_loss(model, turns, adv, [None, None], lam=0.5, **kwargs).detach()) == \
        pytest.approx(float(plain))
    same = [t.sampler_logprobs for t in turns]  # teacher = the sampler = the current weights
    assert float(skill_sd_loss(model, turns, adv, same, lam=0.5, **kwargs).detach()) == \
        pytest.approx(float(plain), abs=1e-6)
    shifted = [tuple(lp - 0.3 for lp in t.sampler_logprobs) for t in turns]
    stats = {}
    with_kl = skill_sd_loss(model, turns, adv, shifted, lam=0.5, stats=stats, **kwargs).detach()
    k3 = torch.expm1(torch.tensor(-0.3)) + 0.3  # ℓ = 0.3 on every token, ρ = 1
    assert float(with_kl) == pytest.approx(float(plain) + 0.5 * float(k3), abs=1e-5)
    assert stats["kl_tokens"] == stats["tokens"] == n


def test_usefulness_is_pairwise_agreement_between_reward_and_teacher_gain():
    interface = envs.default_interface(SOKOBAN)
    eps = rollout(SOKOBAN, RandomPolicy(interface), seeds=[0], group_size=3, max_turns=1, progress=False,
                  tokenizer=None).episodes
    eps = [replace(ep, turns=tuple(replace(t, response_ids=(5, 6), sampler_logprobs=(-1.0, -1.0))
                                   for t in ep.turns)) for ep in eps]
    gains = [0.5, 0.0, -0.5]  # teacher log-prob minus sampler log-prob per token
    teacher = {id(ep.turns[0]): (-1.0 + g, -1.0 + g) for ep, g in zip(eps, gains, strict=False)}
    assert usefulness(eps, [2.0, 1.0, 0.0], teacher) == 1.0  # the teacher ranks them as the rewards do
    assert usefulness(eps, [0.0, 1.0, 2.0], teacher) == 0.0
    assert usefulness(eps, [1.0, 1.0, 1.0], teacher) is None  # equal rewards: no signal
    assert usefulness(eps, [1.0, 0.0, 1.0], teacher) == 0.5


def test_runs_on_the_alfworld_family_with_task_type_families(tmp_path):
    env = EnvConfig("agentdistill/ALFWorld-v0", max_turns=2, kwargs={"difficulty": "small"})
    result = train(_cfg(tmp_path, "alfworld", env=env, steps=2, history_window=0))
    rows = read_metrics(result.run_dir)
    assert rows[-1]["skill_coverage"] > 0.0  # step 2 found skills of its tasks' types
    bank = json.loads((result.run_dir / "skills.json").read_text())
    families = {s["task_family"] for s in bank["skills"]}
    assert families and all(not f.startswith("agentdistill/") for f in families)  # ALFWorld task types
