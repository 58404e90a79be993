"""The one episode-reward definition every RL loop uses, and what is built on it: group advantages, the
zero-signal filter, per-episode KL sums.

Reward. R_e = Σ_t r_t (the env's per-step rewards), except that an episode the turn budget cut without a
win gets ``truncation_reward`` (0 by default, as π-Distill and verl-agent do): running out of turns is
never worth more than failing outright. GRPO, OPSD (reward mode), π-Distill and Skill-SD all call
:func:`episode_rewards`, so the RL baseline and the PI methods optimise the same objective. The scales
differ by env (docs/training.md#rewards): ALFWorld-style 0/1, Sokoban −0.1 per step ±1 per box +10 on a win,
TextWorld the game's score deltas (max score per game), AppWorld-style 0/1 (all tests pass) — β and λ were
tuned next to 0/1 rewards; scale them with the env.

Zero signal. A group (the G samples of one task) whose env rewards are all equal carries no env signal:
its env advantages are 0. That is decided on env rewards *before* any KL shaping — once β·KL̂ enters the
reward, every group's shaped advantages are non-zero and a filter on them never fires.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from agentdistill.losses import grpo_advantages, sequence_kl
from agentdistill.types import Episode, TurnSample

ZERO_EPS = 1e-6
"""Rewards within this of their group mean count as equal (float sums like 0.1×3 are not exact)."""


def episode_reward(episode: Episode, truncation_reward: float | None) -> float:
    """The episode's summed env reward, or ``truncation_reward`` when the turn budget cut it without a win."""
    if truncation_reward is not None and episode.truncated and not episode.won:
        return float(truncation_reward)
    return float(episode.total_reward)


def episode_rewards(episodes: Sequence[Episode], truncation_reward: float | None) -> torch.Tensor:
    """[E] float64 rewards of ``episodes`` (see :func:`episode_reward`)."""
    return torch.tensor([episode_reward(ep, truncation_reward) for ep in episodes], dtype=torch.float64)


def group_ids(episodes: Sequence[Episode]) -> torch.Tensor:
    """[E] int64 index of each episode's task group (``group_id``), in order of first appearance."""
    index = {g: i for i, g in enumerate(dict.fromkeys(ep.group_id for ep in episodes))}
    return torch.tensor([index[ep.group_id] for ep in episodes], dtype=torch.long)


def group_advantages(episodes: Sequence[Episode], rewards_E: torch.Tensor, *, scale_by_std: bool) -> torch.Tensor:
    """[E] rewards centred within each task group, divided by the group std when ``scale_by_std``."""
    if not episodes:
        return torch.zeros(0, dtype=torch.float64)
    return grpo_advantages(rewards_E.to(torch.float64), group_ids(episodes), scale_by_std=scale_by_std)


def zero_signal_groups(episodes: Sequence[Episode], rewards_E: torch.Tensor) -> set[str]:
    """Group ids whose env rewards are all equal (within ``ZERO_EPS``): no env signal to learn from."""
    centred_E = group_advantages(episodes, rewards_E, scale_by_std=False)
    has_signal: dict[str, bool] = {}
    for ep, a in zip(episodes, centred_E.tolist(), strict=False):
        has_signal[ep.group_id] = has_signal.get(ep.group_id, False) or abs(a) > ZERO_EPS
    return {g for g, signal in has_signal.items() if not signal}


def episode_kl(
    n_episodes: int,
    turns: Sequence[tuple[int, TurnSample]],
    student_lp_BT: torch.Tensor,
    teacher_lp_BT: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    sampled_by: str,
) -> torch.Tensor:
    """[E] k1 estimate of KL(sampler ‖ other view) summed over the tokens and turns of each episode.

    ``turns[b] = (episode index, turn)`` names the episode of row b of the [B, T] log-probs; episodes
    without trainable turns get 0. Direction from ``sampled_by``: KL(π_S ‖ π_T) for student samples (OPSD),
    KL(π_T ‖ π_S) for teacher samples (π-Distill).
    """
    kl_B = sequence_kl(student_lp_BT, teacher_lp_BT, mask_BT, sampled_by=sampled_by)  # type: ignore[arg-type]
    kl_E = torch.zeros(n_episodes, dtype=torch.float64)
    for (e, _), kl in zip(turns, kl_B.cpu().tolist(), strict=False):
        kl_E[e] += kl
    return kl_E
