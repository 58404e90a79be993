"""Env worker processes: a pool rollout gives the serial loop's episodes (Sokoban, TextWorld), overlaps stepping
with generation, records env errors and dead workers on exactly their episodes, restarts workers, and leaves no
process behind.

Real worker processes throughout. The toy env is registered in the workers by ``initializer=toy_env.register``
(conftest puts tests/ on sys.path, which the workers inherit).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import toy_env
from toy_env import TOY_ID, ToyInterface

from agentdistill import envs
from agentdistill.envpool import EnvPool, EnvPoolError, EnvWorkerDied
from agentdistill.policies import Completion, ExpertPolicy, RandomPolicy
from agentdistill.rollout import clean_episodes, rollout
from agentdistill.types import load_episodes

SOKOBAN = "agentdistill/Sokoban-v0"


class Say:
    """Replies ``reply`` to every prompt; ``on_call[n]`` runs before the n-th call (1-based) is answered."""

    sees_privileged = False
    needs_privileged: tuple[str, ...] = ()

    def __init__(self, reply: str, on_call=None):
        self.name, self.reply, self.on_call, self.calls = "say", reply, dict(on_call or {}), 0

    def act(self, prompts):
        self.calls += 1
        if self.calls in self.on_call:
            self.on_call[self.calls]()
        return [Completion(text=self.reply, finish_reason="scripted") for _ in prompts]


@pytest.fixture(scope="module")
def pool():
    with EnvPool(2, initializer=toy_env.register) as p:
        yield p


def _both(env_id, policy, pool, **kwargs):
    """(serial, pooled) rollouts of the same tasks."""
    serial = rollout(env_id, policy, progress=False, **kwargs)
    pooled = rollout(env_id, policy, progress=False, env_pool=pool, **kwargs)
    return serial, pooled


def test_sokoban_episodes_from_two_workers_equal_the_serial_loops(pool):
    interface = envs.default_interface(SOKOBAN)
    for policy in (ExpertPolicy(interface), RandomPolicy(interface)):
        # 5 tasks x 2 samples in chunks of 4: three policy calls per pass, and every chunk spans both workers
        serial, pooled = _both(SOKOBAN, policy, pool, seeds=range(5), group_size=2, max_batch=4, max_turns=12)
        assert pooled.episodes == serial.episodes  # messages, turns (ids, rewards, flags), errors, metadata
        assert len({ep.num_turns for ep in serial.episodes}) > 1  # episodes end in different passes
        assert pooled.metrics.errors == 0 and pooled.metrics.episodes == 10
    assert serial.episodes[0].group_id == serial.episodes[1].group_id  # samples of one task share a group


def test_spawned_workers_give_the_same_episodes_and_fork_is_refused():
    policy = RandomPolicy(envs.default_interface(SOKOBAN))
    with EnvPool(2, start_method="spawn") as spawned:
        serial, pooled = _both(SOKOBAN, policy, spawned, seeds=range(3), group_size=2, max_batch=4, max_turns=6)
    assert pooled.episodes == serial.episodes
    with pytest.raises(ValueError, match="fork is unsafe"):
        EnvPool(1, start_method="fork")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def textworld_cache(tmp_path_factory) -> str:
    """Two generated treasure-hunter games (a few seconds on 2 cores)."""
    textworld = pytest.importorskip("agentdistill_textworld", reason="pip install -e envs/textworld")
    folder = tmp_path_factory.mktemp("textworld-games")
    textworld.prepare([textworld.spec_for("treasure", 1, "train", i) for i in range(2)], cache_dir=folder)
    return str(folder)


def test_textworld_episodes_from_two_workers_equal_the_serial_loops(pool, textworld_cache):
    env_id = "agentdistill/TextWorld-v0"
    interface = envs.default_interface(env_id)
    kwargs = dict(seeds=[0, 1, 2], group_size=2, max_batch=4, max_turns=8,
                  env_kwargs={"kind": "treasure", "num_games": 2, "cache_dir": textworld_cache})
    expert = _both(env_id, ExpertPolicy(interface), pool, **kwargs)
    assert expert[1].episodes == expert[0].episodes and expert[1].metrics.success_rate == 1.0
    randomly = _both(env_id, RandomPolicy(interface), pool, **kwargs)
    assert randomly[1].episodes == randomly[0].episodes and randomly[1].metrics.errors == 0


def test_a_fresh_pool_places_envs_round_robin_and_reuses_freed_room(pool):
    handles = [pool.make(TOY_ID) for _ in range(5)]
    assert [pool.worker_of(h) for h in handles] == [0, 1, 0, 1, 0]
    pool.release(handles[1:4])  # worker 0 keeps 2 envs, worker 1 none
    extra = pool.make(TOY_ID)
    assert pool.worker_of(extra) == 1
    pool.release([handles[0], handles[4], extra])


def test_each_chunk_steps_while_the_next_chunk_is_generated(pool, tmp_path):
    # Episode 0's step waits for a file that only the policy's second call (episode 1's chunk) creates: it sees
    # the file only if the rollout sent that step to its worker and went on generating before gathering it.
    marker = tmp_path / "second-call"
    policy = Say("inc", on_call={2: marker.touch})
    result = rollout(TOY_ID, policy, seeds=[0, 1], max_batch=1, max_turns=1, interface=ToyInterface(),
                     env_kwargs={"rendezvous": str(marker)}, env_pool=pool, progress=False)
    assert [ep.final_observation.endswith("(rendezvous seen)") for ep in result.episodes] == [True, True]


def test_the_workers_step_at_the_same_time(pool, tmp_path):
    # Each env's step announces itself, then waits for the other's announcement: both see it only if the two
    # steps run at once (one after the other, the first would wait out its 10 s and miss).
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    handles = [pool.make(TOY_ID, env_kwargs={"announce": a, "rendezvous": b}),
               pool.make(TOY_ID, env_kwargs={"announce": b, "rendezvous": a})]
    assert [pool.worker_of(h) for h in handles] == [0, 1]
    pool.reset(handles, [0, 1])
    outcomes = pool.gather(pool.step_async([(handles[0], "inc"), (handles[1], "inc")]))
    pool.release(handles)
    assert [obs.endswith("(rendezvous seen)") for obs, *_ in outcomes] == [True, True]


def test_an_env_exception_in_a_worker_is_recorded_as_in_process(pool):
    kwargs = dict(seeds=[0, 1, 2, 3], interface=ToyInterface(), max_batch=3,
                  env_kwargs={"fail_at_turn": 2, "fail_on_seeds": [1, 3]})
    serial, pooled = _both(TOY_ID, Say("inc"), pool, **kwargs)
    assert pooled.episodes == serial.episodes  # the same error text and the same traceback text
    errored = [ep for ep in pooled.episodes if ep.error is not None]
    assert [ep.seed for ep in errored] == [1, 3] and pooled.metrics.errors == 2
    for ep in errored:
        assert ep.error == "RuntimeError: injected env bug" and ep.num_turns == 1
        assert ep.error_traceback.startswith("Traceback (most recent call last):")
        assert "toy_env.py" in ep.error_traceback and ep.error_traceback.endswith("RuntimeError: injected env bug\n")
    assert [ep.seed for ep in clean_episodes(pooled.episodes)] == [0, 2]
    with pytest.raises(RuntimeError, match="injected env bug") as raised:
        rollout(TOY_ID, Say("inc"), on_error="raise", env_pool=pool, progress=False, **kwargs)
    assert "toy_env.py" in str(raised.value.__cause__)  # the worker's traceback travels with it
    assert all(pid is not None for pid in pool.pids)  # an exception does not cost the worker


def test_a_bad_env_request_raises_from_the_pool_as_in_process(pool):
    for env_pool in (None, pool):
        with pytest.raises(ValueError, match="fail_with must be"):
            rollout(TOY_ID, Say("inc"), seeds=[0, 1], interface=ToyInterface(), env_kwargs={"fail_with": "smoke"},
                    env_pool=env_pool, progress=False)
    assert rollout(TOY_ID, Say("inc"), seeds=[0], interface=ToyInterface(), env_pool=pool,
                   progress=False).metrics.success_rate == 1.0


@pytest.mark.parametrize(("fail_with", "exit_text"), [("exit", "exited with code 1 "),
                                                        ("segfault", "exited with code -11 (SIGSEGV)")])
def test_a_dead_worker_ends_exactly_its_episodes_and_is_restarted(fail_with, exit_text):
    interface = ToyInterface()
    kwargs = dict(seeds=range(6), interface=interface, max_batch=2, progress=False)  # "wait": 8 turns each
    with EnvPool(2, initializer=toy_env.register) as pool:
        first_pids = list(pool.pids)
        # seed 2's env (the third, so on worker 0) takes its worker down on its third step
        result = rollout(TOY_ID, Say("wait"), env_pool=pool, **kwargs,
                         env_kwargs={"fail_at_turn": 3, "fail_on_seeds": [2], "fail_with": fail_with})
        errored = {ep.seed: ep for ep in result.episodes if ep.error is not None}
        assert sorted(errored) == [0, 2, 4]  # every env worker 0 held, and nothing else
        for ep in errored.values():
            assert ep.error.startswith(f"EnvWorkerDied: worker 0 (pid {first_pids[0]}) {exit_text}")
            assert "while stepping" in ep.error and "lost" in ep.error
            assert ep.error_traceback.startswith("agentdistill.envpool.EnvWorkerDied: worker 0 (pid")
        assert errored[2].num_turns == 2 and errored[4].num_turns == 2
        assert errored[0].num_turns == 3  # its third step was answered before worker 0 died
        if fail_with == "segfault":  # faulthandler's record of where the worker crashed
            assert "Segmentation fault" in errored[2].error_traceback and "toy_env.py" in errored[2].error_traceback
        clean = clean_episodes(result.episodes)
        assert [ep.seed for ep in clean] == [1, 3, 5] and all(ep.num_turns == 8 and ep.truncated for ep in clean)
        assert result.metrics.errors == 3 and result.metrics.truncation_rate == 1.0
        assert pool.pids == [None, first_pids[1]]

        again = rollout(TOY_ID, Say("wait"), env_pool=pool, **kwargs)  # a fresh worker 0 serves new envs
        assert again.episodes == rollout(TOY_ID, Say("wait"), **kwargs).episodes
        assert pool.pids[0] not in (None, first_pids[0]) and pool.pids[1] == first_pids[1]


def test_a_worker_killed_between_policy_calls_is_recorded_with_its_signal():
    with EnvPool(2, initializer=toy_env.register) as pool:
        victim = pool.pids[1]
        kill = Say("wait", on_call={3: lambda: os.kill(victim, signal.SIGKILL)})
        result = rollout(TOY_ID, kill, seeds=range(4), interface=ToyInterface(), env_pool=pool, progress=False)
        errored = [ep.seed for ep in result.episodes if ep.error is not None]
        assert errored == [1, 3] and all(ep.num_turns == 2 for ep in result.episodes if ep.seed in errored)
        error = result.episodes[1].error
        assert error.startswith(f"EnvWorkerDied: worker 1 (pid {victim}) exited with code -9 (SIGKILL) while stepping")
        assert [ep.num_turns for ep in clean_episodes(result.episodes)] == [8, 8]
        with pytest.raises(EnvWorkerDied, match="SIGKILL"):  # on_error="raise" raises the death itself
            kill = Say("wait", on_call={1: lambda: os.kill(pool.pids[0], signal.SIGKILL)})
            rollout(TOY_ID, kill, seeds=[0], interface=ToyInterface(), env_pool=pool, on_error="raise",
                    progress=False)


def test_the_rollout_command_with_env_workers_saves_the_in_process_episodes(tmp_path, monkeypatch, capsys):
    from agentdistill.cli import rollout_command
    from agentdistill.config import RolloutJobConfig

    pools, start = [], EnvPool.__init__

    def counted(self, *args, **kwargs):  # the real pool, counted
        pools.append(args)
        start(self, *args, **kwargs)

    monkeypatch.setattr(EnvPool, "__init__", counted)
    saved = {}
    for workers in (0, 2):
        cfg = RolloutJobConfig(policies=["expert", "random"], n=3, group_size=2, env_workers=workers, progress=False,
                               out_dir=str(tmp_path / f"workers{workers}"))
        cfg.model.name = "tiny-random"
        rollout_command(cfg)
        saved[workers] = [load_episodes(tmp_path / f"workers{workers}" / p / "episodes.jsonl") for p in cfg.policies]
    assert saved[2] == saved[0] and len(saved[2][1]) == 6
    assert pools == [(2,)]  # one pool, for both policies, and none for env_workers=0


def test_an_env_id_the_workers_do_not_know_names_the_fix():
    with EnvPool(1) as pool, pytest.raises(EnvPoolError, match=r"initializer=") as raised:
        rollout(TOY_ID, Say("inc"), seeds=[0], interface=ToyInterface(), env_pool=pool, progress=False)
    assert "unknown env id" in str(raised.value.__cause__)  # the worker's own error, kept as the cause


def test_a_failing_initializer_stops_the_pool_from_starting():
    with pytest.raises(EnvPoolError, match="initializer failed.*refuses to start"):
        EnvPool(1, initializer=toy_env.refuse_to_start)


def _descendants() -> set[int]:
    """Live (non-zombie) descendants of this process, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_close_leaves_no_process_behind(pool):
    before = _descendants()  # the module's pool, multiprocessing's fork server and resource tracker
    with EnvPool(2, initializer=toy_env.register) as other:
        handles = [other.make(TOY_ID) for _ in range(3)]
        other.reset(handles, [0, 1, 2])
        pids = set(other.pids)
        assert pids <= _descendants()
    assert _descendants() == before and not pids & _descendants()
    other.close()  # idempotent
    with pytest.raises(EnvPoolError, match="closed"):
        other.make(TOY_ID)


def test_workers_end_when_their_parent_is_killed(tmp_path):
    script = ("import os, signal, sys; from agentdistill.envpool import EnvPool\n"
              "if __name__ == '__main__':\n"
              "    pool = EnvPool(2)\n"
              "    print(*pool.pids, flush=True)\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    (tmp_path / "orphan.py").write_text(script)
    run = subprocess.run([sys.executable, str(tmp_path / "orphan.py")], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    pids = [int(p) for p in run.stdout.split()]
    assert len(pids) == 2 and run.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)  # each saw its pipe close and exited


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_training_run_with_env_workers_takes_the_in_process_run_s_step(tmp_path):
    """``env_workers`` in a training loop: the same rollouts (seeded per task), hence the same update, the same
    held-out evaluation, and the workers gone when the run ends."""
    import torch

    from agentdistill.algos.opsd_distill import OPSDDistillConfig, train
    from agentdistill.config import EnvConfig, EvalConfig, ModelConfig
    from agentdistill.runs import read_metrics

    def run(name: str, workers: int):
        cfg = OPSDDistillConfig(model=ModelConfig("tiny-random", device="cpu", dtype="float32"),
                                env=EnvConfig(SOKOBAN, max_turns=2, teacher_privileged=["expert_plan"]),
                                eval=EvalConfig(num_tasks=2, teacher_view=False), num_tasks=2, tasks_per_step=2,
                                group_size=2, max_new_tokens=6, steps=1, lr=1e-3, env_workers=workers,
                                out_dir=str(tmp_path / name), checkpoint_every=1, progress=False)
        result = train(cfg)
        weights = torch.load(result.run_dir / "checkpoints" / "step_000001" / "model.pt", weights_only=True)
        return read_metrics(result.run_dir)[0], read_metrics(result.run_dir / "eval.jsonl"), weights

    serial, pooled = run("serial", 0), run("pooled", 2)
    assert serial[0]["trained_turns"] == pooled[0]["trained_turns"] > 0
    for key in ("loss", "grad_norm", "response_tokens", "success_rate"):
        assert serial[0][key] == pooled[0][key], key
    assert [r["success_rate"] for r in serial[1]] == [r["success_rate"] for r in pooled[1]]
    assert all(torch.equal(serial[2][k], pooled[2][k]) for k in serial[2])
    with pytest.raises(ValueError, match="env_workers must be >= 0"):
        train(OPSDDistillConfig(model=ModelConfig("tiny-random"), env_workers=-1, out_dir=str(tmp_path / "x"),
                                env=EnvConfig(SOKOBAN, teacher_privileged=["expert_plan"])))
