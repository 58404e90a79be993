"""The ``agentdistill`` command line: ``agentdistill <command> [hydra overrides]``.

Commands:
    train     train a model: ``agentdistill train algo=pi_distill env=alfworld model=smollm2-135m-instruct``
              (algo: sft, grpo, opd, opsd_reward, opsd_distill, pi_distill, skill_sd); evaluates on held-out
              tasks before, during and after, writes metrics.jsonl, eval.jsonl, checkpoints and plots; rerun the
              same command with ``hydra.run.dir=<run dir>`` to resume. On N processes (FSDP2):
              ``torchrun --nproc-per-node N --no-python agentdistill train ... hydra.run.dir=<run dir>``.
    eval      evaluate a model or a training run's weights on held-out tasks, student and teacher view:
              ``agentdistill eval env=alfworld checkpoint=runs/train/pi_distill/<time>``
    report    ``agentdistill report RUN_DIR``: the evaluation table, before → after, and the plots.
    collect   run a teacher (the env's expert, a local model, or an OpenAI-compatible endpoint) on tasks and
              keep its successful action traces as a PI dataset; resumable (rerun with the same out_dir):
              ``agentdistill collect teacher=openai endpoint.base_url=http://127.0.0.1:8000/v1
              endpoint.model=NAME env=alfworld split=train num_tasks=200``
    rollout   roll out policies (the model, the env's expert, random) on the same tasks; print a metrics
              table; save episodes. Example:
              ``agentdistill rollout env=sokoban model=smollm2-135m-instruct policies=[hf,expert] n=8``
    icd       in-context distillation with a self-consistency cascade (training-free, for deployment):
              ``agentdistill icd collect`` — the teacher's demos on the train split, priced;
              ``agentdistill icd run demos=<dir>/demos.jsonl`` — teacher-only, student-only, ICD and
              ICD+cascade arms on the same held-out tasks, every call priced; resumable;
              ``agentdistill icd report RUN_DIR`` — accuracy, $/episode, deferral rate, break-even, savings,
              Pareto plot.
    probe     before training, measure what predicts which PI method works on the weights a run would
              start from: PI utility Δ = held-out success(teacher view) − success(student view), and the
              initial KL(student ‖ teacher) on the student's rollouts; prints the π-Distill paper's reading
              and writes probe.json. Takes train's overrides: ``agentdistill probe env=sokoban
              warm_start.steps=12``
    export    ``agentdistill export RUN_DIR OUT_DIR [--model NAME]``: a run's weights (its latest checkpoint,
              or one ``checkpoints/step_*`` folder) as a plain Hugging Face model folder, LoRA merged, for
              ``model.name=OUT_DIR``, ``vllm serve OUT_DIR`` or transformers.
    envs      list the registered environment ids.

Each command's options (except report's) are Hydra overrides of its config (``agentdistill train --cfg job``
prints it; presets live in ``configs/``). ``@hydra.main`` lives only here; below it everything takes plain
dataclasses.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agentdistill import envs
from agentdistill.config import EvalJobConfig, RolloutJobConfig, config_dir, register_configs

POLICIES = ("hf", "expert", "random")


def rollout_command(cfg: RolloutJobConfig) -> dict[str, dict[str, float]]:
    """Run every policy in ``cfg.policies`` on the same tasks; save episodes and metrics under ``out_dir``."""
    from agentdistill.envpool import EnvPool
    from agentdistill.rollout import rollout
    from agentdistill.runs import write_run_info
    from agentdistill.types import save_episodes
    from agentdistill.views import ViewSpec

    unknown = [p for p in cfg.policies if p not in POLICIES]
    if unknown or not cfg.policies:
        raise ValueError(f"unknown policies {unknown}: choose from {list(POLICIES)}, e.g. policies=[hf,expert]")
    if cfg.n < 1 or cfg.group_size < 1:
        raise ValueError("n and group_size must be >= 1")
    if cfg.env_workers < 0:
        raise ValueError(f"env_workers must be >= 0 (0 steps the envs in this process), got {cfg.env_workers}")
    out = Path(cfg.out_dir)
    write_run_info(out, cfg)
    interface = envs.default_interface(cfg.env.id)
    model, tokenizer = _load(cfg)
    results: dict[str, dict[str, float]] = {}
    with EnvPool(cfg.env_workers) if cfg.env_workers else contextlib.nullcontext() as pool:
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
                env_pool=pool,
            )
            save_episodes(out / name / "episodes.jsonl", result.episodes)
            results[name] = result.metrics.as_dict()
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    print_metrics_table(results, title=f"{cfg.env.id}: {cfg.n} tasks × {cfg.group_size} samples")
    print(f"episodes and metrics saved under {out}")
    return results


def _load(cfg: RolloutJobConfig) -> tuple[Any, Any]:
    from agentdistill.models import load_model, load_tokenizer

    if "hf" in cfg.policies:
        return load_model(cfg.model.name, device=cfg.model.device, dtype=cfg.model.dtype)
    return None, load_tokenizer(cfg.model.name)


def _policy(name: str, cfg: RolloutJobConfig, interface: Any, model: Any, tokenizer: Any) -> Any:
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
    from agentdistill.config import env_kwargs

    return env_kwargs(kwargs)


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
        table.add_row(name, *(_fmt(m[key]) for _, key in columns[1:] if key is not None))
    # Wide enough for every column even when stdout is a pipe (rich assumes 80 columns there).
    Console(width=max(Console().width, 130)).print(table)
    for name, m in results.items():
        print(f"success_rate[{name}]: {m['success_rate']:.3f}")


def _fmt(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def train_command(cfg: Any) -> dict[str, Any]:
    """Train with the algorithm whose config ``cfg`` is; print the held-out table and before → after."""
    from agentdistill.algos import algorithm, algorithm_of
    from agentdistill.report import print_report

    name = algorithm_of(cfg)
    _, train = algorithm(name)
    result = train(cfg)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 reports for the job
        return {}
    print(f"{name}: {result.final_step} steps in {result.run_dir}")
    summary = print_report(result.run_dir)
    return summary


def probe_command(cfg: Any) -> dict[str, Any]:
    """Probe the weights ``agentdistill train`` with the same overrides would start from."""
    from agentdistill.probe import print_probe, probe

    result = probe(cfg)
    print_probe(result)
    print(f"saved {Path(cfg.out_dir) / 'probe.json'}")
    return result


def eval_command(cfg: EvalJobConfig) -> dict[str, dict[str, float]]:
    """Evaluate ``cfg.model`` (with ``cfg.checkpoint``'s weights) on held-out tasks from each view."""
    from agentdistill.eval import evaluate
    from agentdistill.models import load_model
    from agentdistill.runs import write_run_info
    from agentdistill.types import save_episodes

    out = Path(cfg.out_dir)
    write_run_info(out, cfg)
    model, tokenizer = load_model(cfg.model.name, device=cfg.model.device, dtype=cfg.model.dtype)
    if cfg.checkpoint:
        from agentdistill.checkpoints import load_weights

        print(f"weights: {load_weights(model, cfg.checkpoint)}")
    results = evaluate(model, tokenizer, cfg.env, cfg.eval, views=cfg.views, max_new_tokens=cfg.max_new_tokens,
                       history_window=cfg.history_window, seed=cfg.seed)
    table = {}
    for r in results:
        save_episodes(out / r.view / "episodes.jsonl", r.episodes)
        table[f"{r.view} view"] = r.metrics
    (out / "metrics.json").write_text(json.dumps(table, indent=2) + "\n")
    print_metrics_table(
        {k: {**m, "tokens_per_s": m["tokens_generated"] / max(m["wall_time_s"], 1e-9)} for k, m in table.items()},
        title=f"{cfg.env.id} held-out: {cfg.eval.num_tasks} tasks × {cfg.eval.group_size} samples")
    for r in results:
        print(eval_errors_line(r.view, r.metrics, out / r.view / "episodes.jsonl"))
    print(f"episodes and metrics saved under {out}")
    return table


def eval_errors_line(view: str, metrics: dict[str, float], episodes_path: Path) -> str:
    """``errors[<view> view]: N ...``: env errors are named on their own line, since success and return
    leave errored episodes out and would otherwise hide a broken env."""
    line = f"errors[{view} view]: {metrics['errors']} (error_rate {metrics['error_rate']:.3f})"
    if metrics["errors"]:
        line += (" — success and return are over the other episodes; each errored episode's error_traceback "
                 f"is in {episodes_path}")
    return line


def report_command(argv: Sequence[str]) -> None:
    from agentdistill.report import print_report

    if len(argv) != 1 or argv[0].startswith("-"):
        raise SystemExit("usage: agentdistill report RUN_DIR   (a training run directory)")
    try:
        print_report(argv[0])
    except FileNotFoundError as e:
        raise SystemExit(f"agentdistill report: {e}") from None


def export_command(argv: Sequence[str]) -> None:
    import argparse

    from agentdistill.checkpoints import export_model

    parser = argparse.ArgumentParser(prog="agentdistill export", description="a run's weights as an HF folder")
    parser.add_argument("checkpoint", help="a training run directory or one of its checkpoints/step_* folders")
    parser.add_argument("out_dir", help="a new (or empty) folder")
    parser.add_argument("--model", default=None, help="the base model (default: the run's model.name)")
    args = parser.parse_args(list(argv))
    try:
        out = export_model(args.checkpoint, args.out_dir, args.model)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        raise SystemExit(f"agentdistill export: {e}") from None
    print(f"exported {args.checkpoint} to {out} (use model.name={out})")


def envs_command(argv: Sequence[str]) -> None:
    for env_id in envs.registered_env_ids():
        print(env_id)


def collect_command(cfg: Any) -> None:
    from agentdistill.collect import collect

    pricer = None
    if cfg.price_as:  # the ICD ledger bills the teacher as that model (`agentdistill icd collect` sets it)
        from agentdistill.icd.agent import priced_teacher

        pricer = priced_teacher
    collect(cfg, pricer=pricer)


def icd_run_command(cfg: Any) -> None:
    from agentdistill.icd.run import run_icd

    run_icd(cfg)


def icd_command(argv: Sequence[str]) -> None:
    usage = ("usage: agentdistill icd collect [overrides]  |  agentdistill icd run demos=<dir>/demos.jsonl "
             "[overrides]  |  agentdistill icd report RUN_DIR")
    if not argv or argv[0] not in ("collect", "run", "report"):
        raise SystemExit(usage)
    sub, rest = argv[0], list(argv[1:])
    if sub == "report":
        from agentdistill.icd.report import icd_report

        if len(rest) != 1 or rest[0].startswith("-"):
            raise SystemExit("usage: agentdistill icd report RUN_DIR   (an `agentdistill icd run` directory)")
        try:
            icd_report(rest[0])
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"agentdistill icd report: {e}") from None
        return
    _run_hydra(*(("collect", "icd_collect") if sub == "collect" else ("icd_run", "icd")), rest)


COMMANDS: dict[str, Callable] = {"rollout": rollout_command, "train": train_command, "eval": eval_command,
                                 "collect": collect_command, "icd_run": icd_run_command, "probe": probe_command}


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return
    command, overrides = argv[0], argv[1:]
    if command == "envs":
        envs_command(overrides)
        return
    if command == "report":
        report_command(overrides)
        return
    if command == "export":
        export_command(overrides)
        return
    if command == "icd":
        icd_command(overrides)
        return
    if command == "probe":  # train's config and presets; its own run folder unless one is given
        if not any(o.startswith("hydra.run.dir=") for o in overrides):
            overrides.append("hydra.run.dir=runs/probe/${now:%Y-%m-%d_%H-%M-%S}")
        _run_hydra("probe", "train", overrides)
        return
    if command not in COMMANDS or command == "icd_run":
        raise SystemExit(f"agentdistill: unknown command {command!r}; commands: envs, report, export, icd, "
                         f"{', '.join(c for c in COMMANDS if c != 'icd_run')}")
    _run_hydra(command, command, overrides)


def check_overrides(command: str, overrides: Sequence[str]) -> None:
    """See ``_check_overrides``; ``command`` names the config."""
    _check_overrides(command, command, overrides)


def _check_overrides(command: str, config_name: str, overrides: Sequence[str]) -> None:
    """Compose ``command``'s config with ``overrides``; on a bad key, exit naming the valid keys there.

    Hydra's own message says a key is not in the schema but not what is; researchers mistype
    ``lr``/``alpha``/``group_size`` often enough that the list (and the closest match) is worth it.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    shown = f"agentdistill {command.replace('_', ' ')}"  # icd_run is typed `agentdistill icd run`
    job = [o for o in overrides if not o.lstrip("~+").startswith("hydra.") and not o.startswith("-")]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        try:
            compose(config_name=config_name, overrides=job)
            return
        except (HydraException, OmegaConfBaseException) as e:
            error = e
        cause = error.__cause__ or error
        full_key = getattr(cause, "full_key", None)
        if not full_key:
            raise SystemExit(f"{shown}: {error}") from None
        groups = [o for o in job if "=" in o and "." not in o.split("=", 1)[0]]
        try:
            base = compose(config_name=config_name, overrides=[o for o in groups if o.split("=")[0] in
                                                           ("algo", "env", "model")])
        except (HydraException, OmegaConfBaseException):
            raise SystemExit(f"{shown}: {error}") from None
    parent_key, _, leaf = str(full_key).rpartition(".")
    node = OmegaConf.select(base, parent_key) if parent_key else base
    valid = sorted(str(k) for k in node) if hasattr(node, "keys") else []
    close = difflib.get_close_matches(leaf, valid, n=1)
    where = f"under '{parent_key}'" if parent_key else "at the top level"
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise SystemExit(f"{shown}: bad override '{full_key}': {cause.msg if hasattr(cause, 'msg') else cause}"
                     f"\nValid keys {where}: {', '.join(valid)}.{hint}")


def budget_overrides(overrides: Sequence[str]) -> tuple[str | None, dict[str, tuple[Any, Any]]]:
    """(the budget preset `agentdistill train` picks, {key: (value without it, value with it)}).

    ``configs/train.yaml`` picks ``configs/budget/<env>.yaml`` by the env's name, and a budget overrides the
    algorithm preset (steps, group_size, ...): say so rather than let it happen silently.
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    job = [o for o in overrides if not o.lstrip("~+").startswith("hydra.") and not o.startswith("-")]
    if any(o.lstrip("~+").split("=")[0] == "budget" for o in job):
        explicit = [o for o in job if o.lstrip("~+").split("=")[0] == "budget"]
        if all(o.startswith("~") or o.endswith("=null") for o in explicit):
            return None, {}
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        with_budget = compose(config_name="train", overrides=job, return_hydra_config=True)
        name = with_budget.hydra.runtime.choices.get("budget")
        if not name or name == "null":
            return None, {}
        without = compose(config_name="train", overrides=[*[o for o in job if not o.startswith("budget=")],
                                                             "~budget"])
    with_container = OmegaConf.to_container(with_budget, resolve=False)
    assert isinstance(with_container, dict)
    with_container.pop("hydra", None)
    flat_with = _flatten(with_container)
    flat_without = _flatten(OmegaConf.to_container(without, resolve=False))
    changed = {k: (flat_without.get(k), v) for k, v in flat_with.items() if flat_without.get(k) != v}
    return str(name), changed


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_flatten(value, f"{prefix}{key}."))
    return {k.rstrip("."): v for k, v in out.items()}


def _print_budget(overrides: Sequence[str]) -> None:
    name, changed = budget_overrides(overrides)
    if not changed:
        return
    listed = ", ".join(f"{k}={new} (else {old})" for k, (old, new) in sorted(changed.items()))
    print(f"budget '{name}' (configs/budget/{name}.yaml) sets: {listed}. Override any on the command line, or drop "
          "the budget with ~budget.", file=sys.stderr)


def _run_hydra(command: str, config_name: str, overrides: list[str]) -> None:
    import hydra
    from omegaconf import OmegaConf

    from agentdistill.algos import register_configs as register_algorithm_configs

    register_configs()
    register_algorithm_configs()
    run = COMMANDS[command]
    if not any(o.startswith("-") for o in overrides):  # --cfg/--help: let hydra answer
        _check_overrides(command, config_name, overrides)
        if command in ("train", "probe"):
            _print_budget(overrides)

    @hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")
    def app(cfg: Any) -> None:
        run(OmegaConf.to_object(cfg))

    saved = sys.argv
    sys.argv = [f"agentdistill-{command}", *overrides]
    try:
        app()
    finally:
        sys.argv = saved


if __name__ == "__main__":
    main()
