"""The ``agentdistill`` command line: ``agentdistill <command> [hydra overrides]``.

Commands:
    rollout   roll out policies (the model, the env's expert, random) on the same tasks; print a metrics
              table; save episodes. Example:
              ``agentdistill rollout env=sokoban model=smollm2-135m-instruct policies=[hf,expert] n=8``
    envs      list the registered environment ids.

Each command's options are Hydra overrides of its config (``agentdistill rollout --cfg job`` prints it).
``@hydra.main`` lives only here; below it everything takes plain dataclasses.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from agentdistill import envs
from agentdistill.config import RolloutJobConfig, config_dir, register_configs

POLICIES = ("hf", "expert", "random")


def rollout_command(cfg: RolloutJobConfig) -> dict[str, dict[str, float]]:
    """Run every policy in ``cfg.policies`` on the same tasks; save episodes and metrics under ``out_dir``."""
    from agentdistill.rollout import rollout
    from agentdistill.runs import write_run_info
    from agentdistill.types import save_episodes
    from agentdistill.views import ViewSpec

    unknown = [p for p in cfg.policies if p not in POLICIES]
    if unknown or not cfg.policies:
        raise ValueError(f"unknown policies {unknown}: choose from {list(POLICIES)}, e.g. policies=[hf,expert]")
    if cfg.n < 1 or cfg.group_size < 1:
        raise ValueError("n and group_size must be >= 1")
    out = Path(cfg.out_dir)
    write_run_info(out, cfg)
    interface = envs.default_interface(cfg.env.id)
    model, tokenizer = _load(cfg)
    results: dict[str, dict[str, float]] = {}
    for name in cfg.policies:
        policy = _policy(name, cfg, interface, model, tokenizer)
        result = rollout(
            cfg.env.id,
            policy,
            seeds=range(cfg.seed, cfg.seed + cfg.n),
            group_size=cfg.group_size,
            interface=interface,
            tokenizer=tokenizer,
            teacher_privileged=cfg.env.teacher_privileged,
            view=ViewSpec(history_window=cfg.history_window),
            max_turns=cfg.env.max_turns,
            env_kwargs=_env_kwargs(cfg.env.kwargs),
            run_seed=cfg.seed,
            progress=cfg.progress,
        )
        save_episodes(out / name / "episodes.jsonl", result.episodes)
        results[name] = result.metrics.as_dict()
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    print_metrics_table(results, title=f"{cfg.env.id}: {cfg.n} tasks × {cfg.group_size} samples")
    print(f"episodes and metrics saved under {out}")
    return results


def _load(cfg: RolloutJobConfig):
    from agentdistill.models import load_model, load_tokenizer

    if "hf" in cfg.policies:
        return load_model(cfg.model.name, device=cfg.model.device, dtype=cfg.model.dtype)
    return None, load_tokenizer(cfg.model.name)


def _policy(name: str, cfg: RolloutJobConfig, interface, model, tokenizer):
    from agentdistill.policies import ExpertPolicy, HFPolicy, RandomPolicy

    if name == "expert":
        return ExpertPolicy(interface)
    if name == "random":
        return RandomPolicy(interface)
    s = cfg.sampling
    return HFPolicy(
        model, tokenizer, temperature=s.temperature, max_new_tokens=s.max_new_tokens, batch_size=s.batch_size,
        name=f"hf:{cfg.model.name}",
    )


def _env_kwargs(kwargs: dict) -> dict:
    # YAML has no tuples; envs take (rows, cols)-style knobs as tuples.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def print_metrics_table(results: dict[str, dict[str, float]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    columns = [
        ("policy", None), ("success", "success_rate"), ("return", "mean_return"), ("turns", "mean_turns"),
        ("invalid", "invalid_action_rate"), ("format err", "format_error_rate"),
        ("truncated", "truncation_rate"), ("tokens", "tokens_generated"), ("tok/s", "tokens_per_s"),
        ("wall s", "wall_time_s"), ("errors", "errors"),
    ]
    for header, _ in columns:
        table.add_column(header, justify="left" if header == "policy" else "right")
    for name, m in results.items():
        table.add_row(name, *(_fmt(m[key]) for _, key in columns[1:]))
    # Wide enough for every column even when stdout is a pipe (rich assumes 80 columns there).
    Console(width=max(Console().width, 130)).print(table)
    for name, m in results.items():
        print(f"success_rate[{name}]: {m['success_rate']:.3f}")


def _fmt(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def envs_command(argv: Sequence[str]) -> None:
    for env_id in envs.registered_env_ids():
        print(env_id)


COMMANDS: dict[str, tuple[type, Callable]] = {"rollout": (RolloutJobConfig, rollout_command)}


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return
    command, overrides = argv[0], argv[1:]
    if command == "envs":
        envs_command(overrides)
        return
    if command not in COMMANDS:
        raise SystemExit(f"agentdistill: unknown command {command!r}; commands: envs, {', '.join(COMMANDS)}")
    _run_hydra(command, overrides)


def _run_hydra(command: str, overrides: list[str]) -> None:
    import hydra
    from omegaconf import OmegaConf

    register_configs()
    _, run = COMMANDS[command]

    @hydra.main(config_path=str(config_dir()), config_name=command, version_base="1.3")
    def app(cfg) -> None:
        run(OmegaConf.to_object(cfg))

    saved = sys.argv
    sys.argv = [f"agentdistill-{command}", *overrides]
    try:
        app()
    finally:
        sys.argv = saved


if __name__ == "__main__":
    main()
