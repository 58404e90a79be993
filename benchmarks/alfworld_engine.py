"""ALFWorld engines side by side in one run: our native Python engine vs the real one (TextWorld + ALFWorld).

For the first N games of a generated split, each game is written once as an ALFWorld ``game.tw-pddl`` file and
loaded by both backends. Both then play the SAME command sequences: the expert plan (the optimal planner on a
fresh native engine) and a seeded random walk over the admissible commands. Only ``reset``, ``step`` and the
``admissible_commands``/``won`` queries are timed (loading a game is reported separately), and at every step
the feedback, the admissible command list and ``won`` must match.

    python benchmarks/alfworld_engine.py                           # valid_unseen, 100 games, full rooms
    python benchmarks/alfworld_engine.py --games 10 --difficulty small

Needs the TextWorld extra: pip install -e "envs/alfworld[textworld]". Prints a table, writes a JSON next to
this file (or --out), and ends with headline lines `name: value`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path


def replay(engine, commands: list[str]) -> tuple[list[tuple[str, list[str], bool]], float, float]:
    """Reset, then play ``commands``: the (feedback, admissible commands, won) trace, reset s and step s."""
    start = time.perf_counter()
    trace = [(engine.reset(), engine.admissible_commands, engine.won)]
    middle = time.perf_counter()
    for command in commands:
        trace.append((engine.step(command), engine.admissible_commands, engine.won))
    return trace, middle - start, time.perf_counter() - middle


def random_walk(engine, steps: int, rng: random.Random) -> list[str]:
    """A random walk over the engine's admissible commands (stops early if the game is won)."""
    engine.reset()
    commands = []
    for _ in range(steps):
        if engine.won:
            break
        commands.append(rng.choice(engine.admissible_commands))
        engine.step(commands[-1])
    return commands


def first_difference(native, real, commands: list[str]) -> dict | None:
    """Where two traces first differ: step, command, field and both values (None if they are equal)."""
    for t, (a, b) in enumerate(zip(native, real, strict=True)):
        for field, x, y in zip(("feedback", "admissible_commands", "won"), a, b, strict=True):
            if x != y:
                if field == "admissible_commands":
                    x, y = sorted(set(x) - set(y)), sorted(set(y) - set(x))  # only in native / only in real
                return {"step": t, "command": commands[t - 1] if t else "(reset)", "field": field,
                        "native": x, "textworld": y}
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--games", type=int, default=100, help="the first N games of the split")
    parser.add_argument("--split", default="valid_unseen")
    parser.add_argument("--difficulty", default="full")
    parser.add_argument("--walk-steps", type=int, default=10, help="length of the random walk per game")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    totals, games, mismatch, expert_wins = compare(args)
    report(args, totals, games, mismatch, expert_wins)


def compare(args: argparse.Namespace) -> tuple[dict, list[dict], dict | None, dict[str, int]]:
    """Play every game on both backends: step timings per backend, per-game records, the first mismatch and
    the expert plans' wins per backend."""
    # Imported here so this file imports without the plugin (or its generator) installed.
    from agentdistill_alfworld.engine import Engine
    from agentdistill_alfworld.generator import make_game, split_games, write_game_file
    from agentdistill_alfworld.pddl import read_game_file
    from agentdistill_alfworld.planner import plan
    from agentdistill_alfworld.textworld_backend import TextWorldEngine

    specs = split_games(args.split, difficulty=args.difficulty)[: args.games]
    backends = ("native", "textworld")
    totals = {b: {"steps": 0, "step_s": 0.0, "resets": 0, "reset_s": 0.0, "load_s": 0.0} for b in backends}
    games, mismatch, expert_wins = [], None, {"native": 0, "textworld": 0}
    with tempfile.TemporaryDirectory() as tmp:
        paths = [write_game_file(make_game(s), Path(tmp) / s.game_id / "game.tw-pddl") for s in specs]
        TextWorldEngine(paths[0])  # warm-up: imports textworld and loads Fast Downward's library
        for spec, path in zip(specs, paths, strict=True):
            start = time.perf_counter()
            native = Engine(*read_game_file(path))
            totals["native"]["load_s"] += time.perf_counter() - start
            start = time.perf_counter()
            real = TextWorldEngine(path)
            totals["textworld"]["load_s"] += time.perf_counter() - start

            expert_engine = Engine(*read_game_file(path))
            expert_engine.reset()
            expert = plan(expert_engine) or []
            walk = random_walk(expert_engine, args.walk_steps, random.Random(f"{args.seed}/{spec.game_id}"))
            record = {"game_id": spec.game_id, "expert_steps": len(expert), "walk_steps": len(walk),
                      "match": True}
            for kind, commands in (("expert", expert), ("walk", walk)):
                ours, *ours_s = replay(native, commands)
                theirs, *theirs_s = replay(real, commands)
                for name, (reset_s, step_s) in (("native", ours_s), ("textworld", theirs_s)):
                    totals[name]["resets"] += 1
                    totals[name]["reset_s"] += reset_s
                    totals[name]["steps"] += len(commands)
                    totals[name]["step_s"] += step_s
                if kind == "expert":
                    expert_wins["native"] += ours[-1][2]
                    expert_wins["textworld"] += theirs[-1][2]
                diff = first_difference(ours, theirs, commands)
                if diff is not None:
                    record["match"] = False
                    if mismatch is None:
                        mismatch = {"game_id": spec.game_id, "sequence": kind, **diff}
            games.append(record)
    return totals, games, mismatch, expert_wins


def report(args: argparse.Namespace, totals: dict, games: list[dict], mismatch: dict | None,
           expert_wins: dict[str, int]) -> None:
    """Print the table and the headline lines, and write the JSON."""
    n = len(games)
    rate = {name: t["steps"] / t["step_s"] for name, t in totals.items()}
    speedup = rate["native"] / rate["textworld"]
    parity = sum(g["match"] for g in games) / n
    steps = totals["native"]["steps"]
    print(f"{n} games of {args.split} ({args.difficulty}); {steps} steps per backend "
          f"(expert plans + {args.walk_steps}-step random walks) and {totals['native']['resets']} resets")
    print(f"{'backend':<34} {'step s':>8} {'steps/s':>9} {'ms/reset':>9} {'ms/load':>8} {'expert wins':>12}")
    for name, label in (("native", "native (Python)"), ("textworld", "textworld (PDDL + Fast Downward)")):
        t = totals[name]
        print(f"{label:<34} {t['step_s']:>8.2f} {rate[name]:>9.1f} {1000 * t['reset_s'] / t['resets']:>9.2f} "
              f"{1000 * t['load_s'] / n:>8.2f} {expert_wins[name]:>8}/{n}")
    print(f"{'per-step speed-up (native/textworld)':<34} {speedup:>18.1f}x")
    print(f"games with every step identical: {sum(g['match'] for g in games)}/{n}")
    if mismatch is not None:
        print(f"first mismatch: {json.dumps(mismatch)}")

    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".strip(),
        "python": platform.python_version(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "games": n,
        "steps_per_backend": steps,
        "native": {**totals["native"], "steps_per_s": rate["native"], "expert_wins": expert_wins["native"]},
        "textworld": {**totals["textworld"], "steps_per_s": rate["textworld"],
                      "expert_wins": expert_wins["textworld"]},
        "speedup": speedup,
        "parity": parity,
        "first_mismatch": mismatch,
        "per_game": games,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"native_steps_per_s: {rate['native']:.0f}")
    print(f"textworld_steps_per_s: {rate['textworld']:.1f}")
    print(f"speedup: {speedup:.1f}")
    print(f"parity: {parity:.3f}")


if __name__ == "__main__":
    main()
