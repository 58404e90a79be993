"""The text-environment contract: Gymnasium conventions, plugin discovery, a turn budget, a conformance checker.

An agentdistill environment is a plain ``gymnasium.Env`` (no torch), registered as
``agentdistill/<Name>-v<N>`` by a plugin distribution:

- ``observation_space`` and ``action_space`` are ``gymnasium.spaces.Text``; observations and actions are str.
- ``reset(*, seed, options) -> (obs, info)`` and ``step(action) -> (obs, reward, terminated, truncated, info)``
  with a per-step reward. ``terminated`` means the task ended (won, lost, submitted); ``truncated`` means a
  budget ran out and is set only by wrappers such as ``TurnLimit``. The two are never merged.
- An invalid action is an observation with a documented reward, never an exception; a bug raises.
- ``info`` always has ``task`` (goal text) and ``task_id``; ``won``/``success`` when known;
  ``admissible_actions`` (list of str) where the env has them; ``invalid_action`` (bool) on steps.
- Privileged information (PI) is opt-in and quarantined: the env's class lists the kinds it offers in
  ``privileged_kinds``; the constructor argument ``privileged=[...]`` requests some (an unknown kind raises
  ValueError); requested PI appears only in ``info["privileged"]``, a dict keyed by exactly the requested
  kinds, and requesting it never changes the observation or any other info key.
- The same seed gives the same episode byte for byte; envs pickle mid-episode.
- ``default_max_turns`` (class attribute) is the family's default turn budget.

A plugin announces itself through the entry-point group ``agentdistill.envs``. The entry point names a
zero-argument callable that registers the family's Gymnasium ids (idempotently) and returns a mapping from
env id to a zero-argument factory of that env's default ``AgentInterface``. Plugins do not import
agentdistill: the interface is a structural ``Protocol``.
"""

from __future__ import annotations

import copy
import json
import pickle
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Protocol, SupportsFloat, runtime_checkable

import gymnasium as gym
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

ENTRY_POINT_GROUP = "agentdistill.envs"
NAMESPACE = "agentdistill/"
PRIVILEGED_KEY = "privileged"


@runtime_checkable
class AgentInterface(Protocol):
    """How an LLM talks to one env family, at the text level (DESIGN §3.2).

    The interface never sees privileged information except through ``render_privileged``, whose output goes
    only into the teacher view. ``system_prompt`` and ``observation_message`` receive ``info`` with the
    ``privileged`` key removed.
    """

    name: str

    def system_prompt(self, info: Mapping[str, Any]) -> str:
        """The system message for an episode, from the reset ``info`` (rules, task, answer format)."""
        ...

    def observation_message(self, observation: str, info: Mapping[str, Any]) -> str:
        """The user-turn text for one observation (e.g. the observation plus the admissible actions)."""
        ...

    def parse_action(self, text: str) -> str | None:
        """The env action in a model reply, or None when the reply does not parse (counted as invalid)."""
        ...

    def format_action(self, action: str) -> str:
        """The reply an expert writes for ``action``; ``parse_action(format_action(a)) == a``."""
        ...

    def render_privileged(self, privileged: Mapping[str, Any]) -> str:
        """Teacher-only text for a PI dict (``info["privileged"]``); "" for an empty mapping."""
        ...


class EnvContractError(AssertionError):
    """An environment breaks the agentdistill text-env contract (raised by ``check_text_env``)."""


# --------------------------------------------------------------------------------------------- discovery


_BROKEN_PLUGINS: dict[str, str] = {}


@cache
def _plugins() -> dict[str, Callable[[], AgentInterface]]:
    """Load every installed env plugin. One that fails to load is reported (a warning now, and in the error
    for an unknown env id) instead of taking every other family down with it."""
    interfaces: dict[str, Callable[[], AgentInterface]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            interfaces.update(ep.load()())
        except Exception as e:  # a third party's import error must not hide the families that work
            _BROKEN_PLUGINS[ep.value] = f"{type(e).__name__}: {e}"
            warnings.warn(f"env plugin {ep.name!r} ({ep.value}) failed to load and is skipped: "
                          f"{type(e).__name__}: {e}. Reinstall it or uninstall it.", stacklevel=2)
    return interfaces


def registered_env_ids() -> list[str]:
    """Every ``agentdistill/...`` Gymnasium id, after loading the installed env plugins."""
    _plugins()
    return sorted(i for i in gym.registry if i.startswith(NAMESPACE))


def _check_known(env_id: str) -> None:
    if env_id not in registered_env_ids():
        known = ", ".join(registered_env_ids()) or "none: no env plugin is installed"
        broken = "".join(f" Plugin {name} failed to load ({error})." for name, error in _BROKEN_PLUGINS.items())
        raise gym.error.UnregisteredEnv(
            f"unknown env id {env_id!r}. Registered agentdistill envs: {known}.{broken} Env families are plugin "
            "distributions: install one, e.g. `pip install -e envs/sokoban` from a checkout."
        )


def default_interface(env_id: str, **kwargs: Any) -> AgentInterface:
    """The default ``AgentInterface`` the env's plugin ships for ``env_id``, built with ``kwargs``
    (e.g. ``pi_format="next_k", k=1`` for ALFWorld)."""
    _check_known(env_id)
    factory = _plugins().get(env_id)
    if factory is None:
        raise ValueError(f"{env_id} is registered with Gymnasium but no plugin ships an interface for it: pass one")
    try:
        return factory(**kwargs)
    except TypeError as e:
        raise ValueError(f"bad interface options {kwargs} for {env_id}: {e}") from None


def make(
    env_id: str, *, privileged: Sequence[str] = (), max_turns: int | None = None, **kwargs: Any
) -> gym.Env:
    """Make an agentdistill env wrapped in a ``TurnLimit``.

    Args:
        env_id: a registered id such as ``"agentdistill/Sokoban-v0"``.
        privileged: PI kinds to request (see the env's ``privileged_kinds``); they appear only in
            ``info["privileged"]``.
        max_turns: turn budget (truncation); None uses the env's ``default_max_turns``.
        **kwargs: the env's own constructor knobs.
    """
    _check_known(env_id)
    env = gym.make(env_id, privileged=list(privileged), disable_env_checker=True, **kwargs)
    if max_turns is None:
        max_turns = getattr(env.unwrapped, "default_max_turns", None)
    if max_turns is None:
        raise ValueError(f"{env_id} has no default_max_turns: pass max_turns explicitly")
    return TurnLimit(env, max_turns)


def public_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """``info`` without the privileged block: what student-side code may read."""
    return {k: v for k, v in info.items() if k != PRIVILEGED_KEY}


# ---------------------------------------------------------------------------------------------- wrappers


class TurnLimit(gym.Wrapper):
    """Truncate an episode after ``max_turns`` steps.

    Unlike Gymnasium's ``TimeLimit`` this never reports ``truncated`` on the step that terminates the
    episode: an episode that ends by itself on its last allowed turn is terminated, not truncated, so returns
    and bootstrapping stay correct.
    """

    def __init__(self, env: gym.Env, max_turns: int):
        if not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns must be a positive int, got {max_turns!r}")
        super().__init__(env)
        self.max_turns = max_turns
        self._turns = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._turns = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._turns += 1
        if self._turns >= self.max_turns and not terminated:
            truncated = True
        return obs, reward, terminated, truncated, info


# ------------------------------------------------------------------------------------------------ checker


def check_text_env(env: str | gym.Env, *, seeds: Sequence[int] = (0, 1), n_steps: int = 25) -> None:
    """Check an env against the agentdistill contract; raise ``EnvContractError`` naming what broke.

    Runs Gymnasium's own ``check_env`` (its warnings count as failures), then checks Text spaces, the
    required info keys, seeded determinism across two fresh instances, pickling mid-episode, that the bare
    env never truncates, and PI quarantine: unknown kinds raise, no ``privileged`` key unless requested,
    exactly the requested keys when requested, and identical observations and public info with and
    without PI.
    """
    spec = env.spec if isinstance(env, gym.Env) else gym.spec(_known(env))
    if spec is None:
        raise EnvContractError("the env has no EnvSpec: make it with gymnasium.make or agentdistill.make")

    def fresh(privileged: Sequence[str] = ()) -> gym.Env:
        return gym.make(spec.id, **{**spec.kwargs, "privileged": list(privileged)}, disable_env_checker=True)

    base = fresh()
    raw = base.unwrapped
    _expect(isinstance(base.observation_space, gym.spaces.Text), "observation_space must be spaces.Text")
    _expect(isinstance(base.action_space, gym.spaces.Text), "action_space must be spaces.Text")
    kinds = tuple(getattr(raw, "privileged_kinds", None) or ())
    _expect(isinstance(getattr(raw, "default_max_turns", None), int), "env class must set default_max_turns")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            gymnasium_check_env(fresh().unwrapped, skip_render_check=True)
        except AssertionError as err:
            raise EnvContractError(f"gymnasium.utils.env_checker.check_env failed: {err}") from err
    problems = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    _expect(not problems, f"gymnasium.utils.env_checker.check_env warned: {problems}")

    try:
        fresh(["__no_such_privileged_kind__"])
    except ValueError:
        pass
    else:
        raise EnvContractError("requesting an unknown privileged kind must raise ValueError")

    for seed in seeds:
        plain = _play(fresh(), seed, n_steps)
        _expect(plain == _play(fresh(), seed, n_steps), f"seed {seed}: two fresh envs gave different episodes")
        _expect(_play(fresh(), seed, n_steps, pickle_at=n_steps // 3) == plain, f"seed {seed}: unpickled env diverged")
        for step in plain:
            info = step["info"]
            _expect(PRIVILEGED_KEY not in info, "info has a 'privileged' key although no PI was requested")
            for key in ("task", "task_id"):
                _expect(key in info, f"info must always carry {key!r}")
            _expect(not step.get("truncated"), "the bare env must never truncate: budgets belong to wrappers")
            if "admissible_actions" in info:
                _expect(all(isinstance(a, str) for a in info["admissible_actions"]), "admissible_actions: list of str")
        if kinds:
            with_pi = _play(fresh(kinds), seed, n_steps)
            for a, b in zip(plain, with_pi, strict=True):
                pi = b["info"].pop(PRIVILEGED_KEY, None)
                _expect(isinstance(pi, dict) and set(pi) == set(kinds), f"info['privileged'] must have keys {kinds}")
                _expect(a == b, "requesting PI changed the observation, reward, flags or public info")


def _known(env_id: str) -> str:
    _check_known(env_id)
    return env_id


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise EnvContractError(message)


def _play(env: gym.Env, seed: int, n_steps: int, pickle_at: int | None = None) -> list[dict[str, Any]]:
    """Play a seeded action sequence (admissible actions, with an invalid one mixed in); JSON-normalised."""
    rng = random.Random(seed)
    obs, info = env.reset(seed=seed)
    record = [{"obs": obs, "info": _jsonable(info)}]
    for t in range(n_steps):
        if pickle_at is not None and t == pickle_at:
            try:
                env = pickle.loads(pickle.dumps(env))
            except (pickle.PicklingError, AttributeError, TypeError) as err:
                raise EnvContractError(f"the env must pickle mid-episode: {err}") from err
        choices = list(info.get("admissible_actions") or []) or [env.action_space.sample()]
        action = "this is not a valid action" if t % 5 == 2 else rng.choice(choices)
        obs, reward, terminated, truncated, info = env.step(action)
        _expect(isinstance(obs, str), f"step must return str observations, got {type(obs).__name__}")
        _expect(isinstance(reward, (int, float)), "reward must be a number")
        record.append({"obs": obs, "reward": float(reward), "terminated": bool(terminated),
                       "truncated": bool(truncated), "info": _jsonable(info)})
        if terminated:
            break
    return record


def _jsonable(info: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(copy.deepcopy(dict(info)), sort_keys=True))
    except TypeError as err:
        raise EnvContractError(f"info must hold JSON values only (it is stored with episodes): {err}") from err
