import json
from dataclasses import replace

import pytest

from agentdistill.types import (
    SCHEMA_VERSION,
    Episode,
    Message,
    TrajectoryFileError,
    TurnSample,
    load_episodes,
    return_to_go,
    save_episodes,
)


def make_episode(i: int = 0) -> Episode:
    turn = TurnSample(
        episode_id=f"e{i}", group_id="g", task_id="t", turn=0, message_index=2, response_text="Action: up",
        action="up", reward=-0.1, terminated=False, truncated=True, invalid_action=False,
        student_prompt_ids=(1, 2, 3), teacher_prompt_ids=(1, 9, 2, 3), response_ids=(7, 8),
        sampler_logprobs=(-0.5, -1.25), finish_reason="stop", return_to_go=-0.1,
        privileged={"expert_plan": ["up", "left"], "none": None},
    )
    scripted = TurnSample(
        episode_id=f"e{i}", group_id="g", task_id="t", turn=1, message_index=4, response_text="??",
        action=None, reward=0.0, terminated=False, truncated=False, invalid_action=True,
    )
    return Episode(
        episode_id=f"e{i}", group_id="g", env_id="agentdistill/Toy-v0", task_id="t", task="count", seed=3,
        messages=(Message("system", "s"), Message("user", "ü ☃ unicode"), Message("assistant", "Action: up")),
        turns=(turn, scripted), final_observation="done", won=False, terminated=False, truncated=True,
        policy="hf", metadata={"note": [1, 2]},
    )


def test_jsonl_round_trip_is_exact(tmp_path):
    episodes = [make_episode(0), make_episode(1)]
    path = save_episodes(tmp_path / "eps.jsonl", episodes)
    assert load_episodes(path) == episodes
    assert isinstance(load_episodes(path)[0].turns[0].response_ids, tuple)


def test_append_keeps_earlier_episodes(tmp_path):
    path = tmp_path / "eps.jsonl"
    save_episodes(path, [make_episode(0)])
    save_episodes(path, [make_episode(1)], append=True)
    assert [e.episode_id for e in load_episodes(path)] == ["e0", "e1"]


def test_corrupt_line_names_the_line_and_keeps_the_file(tmp_path):
    path = save_episodes(tmp_path / "eps.jsonl", [make_episode(0), make_episode(1)])
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:-40]  # a torn write in the middle of the file
    path.write_text("\n".join(lines) + "\n")
    before = path.read_text()
    with pytest.raises(TrajectoryFileError, match=r"eps.jsonl:2 .*0 episodes before it are intact"):
        load_episodes(path)
    assert path.read_text() == before


def test_partial_last_line_can_be_dropped_explicitly(tmp_path):
    path = save_episodes(tmp_path / "eps.jsonl", [make_episode(0)])
    with path.open("a") as f:
        f.write(json.dumps(make_episode(1).to_dict())[:100])
    with pytest.raises(TrajectoryFileError, match="drop_partial_last_line=True"):
        load_episodes(path)
    assert [e.episode_id for e in load_episodes(path, drop_partial_last_line=True)] == ["e0"]


def test_newer_schema_and_missing_header_are_clear_errors(tmp_path):
    newer = tmp_path / "newer.jsonl"
    newer.write_text(json.dumps({"schema": "agentdistill/episodes", "version": SCHEMA_VERSION + 1}) + "\n")
    with pytest.raises(TrajectoryFileError, match="upgrade agentdistill"):
        load_episodes(newer)
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps(make_episode().to_dict()) + "\n")
    with pytest.raises(TrajectoryFileError, match="not an agentdistill episode file"):
        load_episodes(bare)
    with pytest.raises(TrajectoryFileError, match="not an agentdistill episode file"):
        save_episodes(bare, [make_episode()], append=True)


def test_an_errored_episode_keeps_its_traceback_through_save_and_load(tmp_path):
    trace = 'Traceback (most recent call last):\n  File "env.py", line 3, in step\nRuntimeError: boom\n'
    errored = replace(make_episode(0), error="RuntimeError: boom", error_traceback=trace)
    path = save_episodes(tmp_path / "eps.jsonl", [errored, make_episode(1)])
    header = json.loads(path.read_text().splitlines()[0])
    assert header["version"] == SCHEMA_VERSION >= 2  # the version that introduced error_traceback, or later
    assert load_episodes(path) == [errored, make_episode(1)]


def _version_1_file(path, episodes):
    """What agentdistill wrote before ``error_traceback`` existed: version 1, lines without that key."""
    lines = [json.dumps({"schema": "agentdistill/episodes", "version": 1})]
    for ep in episodes:
        record = ep.to_dict()
        del record["error_traceback"]
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_version_1_file_without_error_traceback_still_loads(tmp_path):
    old = replace(make_episode(0), error="RuntimeError: boom")
    path = _version_1_file(tmp_path / "v1.jsonl", [old])
    (loaded,) = load_episodes(path)
    assert loaded == old and loaded.error == "RuntimeError: boom" and loaded.error_traceback is None


def test_appending_to_an_older_version_file_is_refused_and_the_file_kept(tmp_path):
    path = _version_1_file(tmp_path / "v1.jsonl", [make_episode(0)])
    before = path.read_bytes()
    with pytest.raises(TrajectoryFileError, match="schema version 1.*another file"):
        save_episodes(path, [make_episode(1)], append=True)
    assert path.read_bytes() == before


def test_unknown_field_is_rejected(tmp_path):
    path = save_episodes(tmp_path / "eps.jsonl", [make_episode()])
    header, line = path.read_text().splitlines()
    record = json.loads(line)
    record["turns"][0]["advantage"] = 1.0
    path.write_text(header + "\n" + json.dumps(record) + "\n")
    with pytest.raises(TrajectoryFileError, match="advantage"):
        load_episodes(path)


def test_logprobs_must_align_with_response_ids():
    with pytest.raises(ValueError, match="align"):
        TurnSample(
            episode_id="e", group_id="g", task_id="t", turn=0, message_index=2, response_text="x", action="x",
            reward=0.0, terminated=False, truncated=False, invalid_action=False, response_ids=(1, 2),
            sampler_logprobs=(-1.0,),
        )


def test_bad_role_is_rejected():
    with pytest.raises(ValueError, match="role"):
        Message("tool", "x")


def test_return_to_go():
    assert return_to_go([1.0, -0.5, 2.0]) == [2.5, 1.5, 2.0]
    assert return_to_go([]) == []
