import pickle
import subprocess
import sys

import gymnasium as gym
import pytest
from toy_env import TOY_ID

import agentdistill
from agentdistill import envs
from agentdistill.envs import EnvContractError, check_text_env


@pytest.mark.parametrize("env_id", envs.registered_env_ids())
def test_every_registered_env_passes_the_contract_checker(env_id):
    check_text_env(env_id)


def test_sokoban_plugin_is_discovered_through_its_entry_point():
    assert "agentdistill/Sokoban-v0" in envs.registered_env_ids()
    interface = envs.default_interface("agentdistill/Sokoban-v0")
    assert isinstance(interface, envs.AgentInterface)


def test_unknown_env_id_names_the_fix():
    with pytest.raises(gym.error.UnregisteredEnv, match="pip install -e envs/"):
        envs.make("agentdistill/Nope-v0")


def test_unknown_privileged_kind_raises():
    with pytest.raises(ValueError, match="available"):
        envs.make(TOY_ID, privileged=["walkthrough"])


def test_turn_limit_truncates_but_never_on_the_terminating_step():
    env = envs.make(TOY_ID, max_turns=2)
    env.reset(seed=0)
    target = env.unwrapped.target
    assert target >= 2
    flags = [env.step("wait")[2:4] for _ in range(2)]
    assert flags == [(False, False), (False, True)]
    # the episode that ends by itself on its last allowed turn is terminated, not truncated
    env = envs.make(TOY_ID, max_turns=target)
    env.reset(seed=0)
    flags = [env.step("inc")[2:4] for _ in range(target)]
    assert flags[-1] == (True, False) and all(f == (False, False) for f in flags[:-1])


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("LeakyToyEnv", "requesting PI changed"),
        ("UnseededToyEnv", "check_env failed|different episodes"),
        ("SelfTruncatingToyEnv", "never truncate"),
    ],
)
def test_checker_catches_broken_envs(broken, message):
    env_id = f"agentdistill/{broken}-v0"
    gym.register(env_id, entry_point=f"toy_env:{broken}")
    try:
        with pytest.raises(EnvContractError, match=message):
            check_text_env(env_id, seeds=range(6))
    finally:
        del gym.registry[env_id]


def test_wrapped_env_pickles():
    env = envs.make(TOY_ID, privileged=["secret"])
    env.reset(seed=1)
    env.step("inc")
    clone = pickle.loads(pickle.dumps(env))
    assert clone.step("inc")[0] == env.step("inc")[0]


def test_import_agentdistill_does_not_import_torch():
    code = "import sys, agentdistill, agentdistill.policies, agentdistill.rollout; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
    assert agentdistill.__version__


def test_a_broken_plugin_is_skipped_with_a_warning_and_named_in_errors(monkeypatch):
    from importlib.metadata import EntryPoint

    real = envs.entry_points
    broken = EntryPoint(name="broken", value="agentdistill_no_such_plugin:agentdistill_plugin",
                        group=envs.ENTRY_POINT_GROUP)
    monkeypatch.setattr(envs, "entry_points", lambda group: [*real(group=group), broken])
    envs._plugins.cache_clear()
    try:
        with pytest.warns(UserWarning, match="env plugin 'broken' .* failed to load and is skipped"):
            ids = envs.registered_env_ids()
        assert "agentdistill/Sokoban-v0" in ids  # the families that load still work
        with pytest.raises(gym.error.UnregisteredEnv, match="agentdistill_no_such_plugin.* failed to load"):
            envs.make("agentdistill/Broken-v0")
    finally:
        envs._plugins.cache_clear()
        envs._BROKEN_PLUGINS.clear()
