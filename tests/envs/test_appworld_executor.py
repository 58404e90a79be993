"""Tests of the AppWorld sandboxed executor: the observation contract, persistence, limits, and real escape
attempts against every protection layer (each attempt must be refused or contained, the same sandbox must
still answer afterwards, and a bystander sandbox must be unaffected)."""

from __future__ import annotations

import dataclasses
import os
import socket
import statistics
import time

import pytest

from agentdistill_appworld.executor import APICallError, ExecutorLimits, Sandbox, SandboxError

FAST = ExecutorLimits(timeout_s=2.0, memory_mb=256, max_api_calls_per_execute=50)
# The OS-level layers are tested on their own: without the import guard, which refuses ESCAPE outright.
UNGUARDED = dataclasses.replace(FAST, import_guard=False)
NOW = "2023-05-18T12:34:56"
ALL_LAYERS = ("import-guard", "rlimits", "netns", "seccomp")
SECRET = "s3cr3t-7f3a9c"  # planted in files, the environment and the host handler; must never leak
DENIED = "Operation not permitted"
KILLED = ("Execution failed. The Python session ran out of memory or was killed and was restarted; "
          "its variables are lost.")
EXIT = ("Execution failed. exit(), quit() and SystemExit are not allowed here; "
        "the Python session keeps running and its variables are kept.")

# Agent code that leaves Python behind through the object graph and reaches the real os module. The import
# guard refuses it (test_appworld_containment.py); these tests run it with the guard switched off to show
# that the OS-level layers hold on their own.
ESCAPE = (
    "subs = ().__class__.__base__.__subclasses__()\n"
    "wrap_close = [c for c in subs if c.__name__ == '_wrap_close'][0]\n"
    "os_ = wrap_close.__init__.__globals__\n"
    "sys_ = os_['sys']\n"
    "real_import = sys_.modules['builtins'].__import__\n"
    "def every_class(cls=object):\n"
    "    for sub in type.__subclasses__(cls):\n"
    "        yield sub\n"
    "        yield from every_class(sub)\n"
    "FileIO = next(c for c in every_class() if c.__name__ == 'FileIO')\n"
    "ctypes_ = sys_.modules['ctypes']\n"
    "libc = ctypes_.CDLL(None, use_errno=True)\n"
)


# Agent code defining holds(reversed_needle): whether any object reachable in the child contains the needle.
HUNT = (
    "gc = real_import('gc')\n"
    "def holds(reversed_needle):\n"
    "    needle = reversed_needle[::-1]\n"
    "    raw = needle.encode()\n"
    "    visited, seen = [], {id(needle), id(raw)}\n"
    "    stack = gc.get_objects()\n"
    "    while stack:\n"
    "        obj = stack.pop()\n"
    "        if id(obj) in seen:\n"
    "            continue\n"
    "        seen.add(id(obj))\n"
    "        visited.append(obj)  # keeps ids unique while walking\n"
    "        if isinstance(obj, str):\n"
    "            if needle in obj:\n"
    "                return True\n"
    "        elif isinstance(obj, (bytes, bytearray)):\n"
    "            if raw in obj:\n"
    "                return True\n"
    "        else:\n"
    "            stack.extend(gc.get_referents(obj))\n"
    "    return False\n"
)


class Backend:
    """Dict-backed host handler: kv.set/get, math.add, x.y (no-op), slow.* (0.6 s), auth.login (401),
    plain.* (an error without status), bug.* (a host bug), odd.* (a non-JSON result)."""

    def __init__(self, db_path: str = f"/srv/{SECRET}/app.db") -> None:
        self.db_path = db_path
        self.store: dict[str, object] = {}
        self.calls: list[tuple[str, str, dict]] = []

    def __call__(self, app: str, api: str, kwargs: dict) -> object:
        self.calls.append((app, api, kwargs))
        if (app, api) == ("kv", "set"):
            self.store[kwargs["key"]] = kwargs["value"]
            return {"ok": True}
        if (app, api) == ("kv", "get"):
            return self.store.get(kwargs["key"])
        if (app, api) == ("math", "add"):
            return kwargs["a"] + kwargs["b"]
        if (app, api) == ("x", "y"):
            return None
        if app == "slow":
            time.sleep(0.6)
            return "slept"
        if app == "plain":
            raise APICallError("just a message")
        if (app, api) == ("auth", "login"):
            raise APICallError("invalid access token", status=401)
        if app == "bug":
            raise ValueError("a bug in the host handler")
        if app == "odd":
            return object()
        raise APICallError(f"no API named {app}.{api}", status=404)


class StatusError(Exception):
    """An environment exception that is not an APICallError but carries an HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@pytest.fixture()
def backend() -> Backend:
    return Backend()


@pytest.fixture()
def sandbox(backend):
    with Sandbox(backend, limits=FAST, now=NOW) as box:
        yield box


@pytest.fixture()
def escaped(backend):
    """A sandbox without the import guard: ESCAPE gets past Python, so each OS-level layer must hold."""
    with Sandbox(backend, limits=UNGUARDED, now=NOW) as box:
        assert box.protections == ("rlimits", "netns", "seccomp")
        yield box


@pytest.fixture(scope="module")
def bystander():
    """A second sandbox shared by the security tests: its canary variable must survive every attack."""
    with Sandbox(Backend(), limits=FAST) as box:
        assert box.execute("canary = 42") == "Execution successful."
        yield box


def assert_contained(box: Sandbox, bystander: Sandbox, bystander_pid: int | None = None) -> None:
    """The attacked sandbox still computes, and the bystander kept its child and its state."""
    assert box.execute("print(1+1)") == "2\n"
    assert bystander.execute("print(canary)") == "42\n"
    if bystander_pid is not None:
        assert bystander.pid == bystander_pid
    assert bystander.alive


def escape(box: Sandbox, code: str) -> str:
    assert "import-guard" not in box.protections  # with the guard, ESCAPE is refused before it runs
    observation = box.execute(ESCAPE + code)
    assert SECRET not in observation
    return observation


# ------------------------------------------------------------------------------------ observation contract


def test_print_output_and_success_message(sandbox):
    assert sandbox.execute("print(1+1)") == "2\n"
    assert sandbox.execute("x = 3") == "Execution successful."
    assert sandbox.execute("print('a')\nprint('b', 'c', sep='-')") == "a\nb-c\n"


def test_print_of_single_list_or_dict_is_json(sandbox):
    short = sandbox.execute("print({'a': [1, 2], 'b': None, 'c': True})")
    assert short == '{"a": [1, 2], "b": null, "c": true}\n'
    assert sandbox.execute("print([1, 'x'])") == '[1, "x"]\n'
    long = sandbox.execute("print({'key': 'v' * 100})")
    assert long == '{\n  "key": "' + "v" * 100 + '"\n}\n'
    assert sandbox.execute("print([1], [2])") == "[1] [2]\n"  # only a single argument is converted
    assert sandbox.execute("print({1, 2})") == "{1, 2}\n"  # sets are not JSON
    assert sandbox.execute("print([object])") == "[<class 'object'>]\n"  # not JSON-able: plain print


def test_traceback_has_only_agent_frames(sandbox):
    sandbox.execute("def div(a, b):\n    return a / b")
    observation = sandbox.execute("print('before')\nimport json\ndiv(1, 0)")
    assert observation == (
        "before\n"
        "Execution failed. Traceback:\n"
        '  File "<agent>", line 3, in <module>\n'
        "    div(1, 0)\n"
        '  File "<agent>", line 2, in div\n'
        "    return a / b\n"
        "ZeroDivisionError: division by zero"
    )
    library_error = sandbox.execute("json.loads('{bad')")
    assert library_error.startswith('Execution failed. Traceback:\n  File "<agent>", line 1, in <module>\n')
    assert "JSONDecodeError" in library_error
    for leak in ("executor", ".py", "site-packages", "lib/python"):
        assert leak not in library_error
    api_error = sandbox.execute("apis.auth.login(user='me')")
    assert "executor" not in api_error and api_error.count('File "') == 1


def test_syntax_error_format(sandbox):
    assert sandbox.execute("x = 1\nfor i in range(3)\n    pass") == (
        "Execution failed. Syntax error in line 2: for i in range(3)\nMessage: expected ':'"
    )
    assert sandbox.execute("print(x)").startswith("Execution failed.")  # nothing of the bad cell ran


def test_namespace_persists_between_executes(sandbox):
    sandbox.execute("import math\nfrom collections import Counter\ntotal = 10\n"
                    "def double(v):\n    return 2 * v")
    assert sandbox.execute("print(double(total), math.floor(2.5), Counter('aab')['a'])") == "20 2 2\n"


def test_input_raises_clear_error(sandbox):
    observation = sandbox.execute("name = input('who? ')")
    assert observation.endswith(
        "RuntimeError: input() is not supported: there is no interactive user in this environment.")


def test_api_calls_round_trip(sandbox, backend):
    assert sandbox.execute("print(apis.kv.set(key='a', value=[1, 2]))") == '{"ok": true}\n'
    code = "r = apis.kv.get(key='a')\nprint(r, type(r).__name__)\nprint(apis.math.add(a=2, b=3))"
    assert sandbox.execute(code) == "[1, 2] list\n5\n"
    assert sandbox.api_calls == 2
    assert backend.calls[-1] == ("math", "add", {"a": 2, "b": 3})
    assert sandbox.execute("apis.math.add(1, 2)").endswith(
        "TypeError: apis.math.add takes keyword arguments only, e.g. apis.math.add(name=value)")
    assert "must be JSON-serializable" in sandbox.execute("apis.kv.set(key='a', value={1, 2})")
    assert sandbox.api_calls == 0


def test_api_errors_reach_the_agent(sandbox, backend):
    assert sandbox.execute("apis.auth.login(user='me')") == (
        "Execution failed. Traceback:\n"
        '  File "<agent>", line 1, in <module>\n'
        "    apis.auth.login(user='me')\n"
        "APIError: 401 Unauthorized: invalid access token"
    )
    caught = "try:\n    apis.nope.nothing()\nexcept APIError as e:\n    print('caught', e.status, e)"
    assert sandbox.execute(caught) == "caught 404 404 Not Found: no API named nope.nothing\n"
    assert sandbox.execute("apis.plain.call()").endswith("\nAPIError: just a message")

    def status_handler(app, api, kwargs):
        raise StatusError("quota exceeded", status=429)

    with Sandbox(status_handler, limits=FAST) as box:
        assert box.execute("apis.a.b()").endswith("APIError: 429 Too Many Requests: quota exceeded")


def test_handler_time_is_not_charged_to_the_agent(backend):
    with Sandbox(backend, limits=ExecutorLimits(timeout_s=1, memory_mb=256)) as box:
        assert box.execute("print(apis.slow.a(), apis.slow.b())") == "slept slept\n"  # 1.2 s in the host


def test_handler_bug_is_raised_in_the_host(sandbox):
    sandbox.execute("kept = 1")
    with pytest.raises(ValueError, match="a bug in the host handler"):
        sandbox.execute("apis.bug.anything()")
    with pytest.raises(TypeError, match="non-JSON value for apis.odd.thing"):
        sandbox.execute("apis.odd.thing()")
    assert sandbox.execute("print(1+1)") == "2\n"  # a fresh child serves the next call


def test_frozen_clock(sandbox):
    code = (
        "import datetime, time\n"
        "print(datetime.datetime.now())\n"
        "print(datetime.datetime.today(), datetime.date.today(), time.time())\n"
        "print(repr(datetime.datetime.now()), datetime.datetime.now(datetime.timezone.utc).isoformat())\n"
        "d = datetime.datetime.strptime('2023-01-02', '%Y-%m-%d')\n"
        "print(isinstance(d, datetime.datetime), isinstance(d.date(), datetime.date),\n"
        "      (datetime.datetime.now() - d).days)\n"
        "print(time.strftime('%Y-%m-%d %H:%M'))"
    )
    assert sandbox.execute(code) == (
        "2023-05-18 12:34:56\n"
        "2023-05-18 12:34:56 2023-05-18 1684413296.0\n"
        "datetime.datetime(2023, 5, 18, 12, 34, 56) 2023-05-18T12:34:56+00:00\n"
        "True True 136\n"
        "2023-05-18 12:34\n"
    )
    with Sandbox(Backend(), limits=FAST, now="2023-05-18T14:34:56+02:00") as box:  # an aware instant
        assert box.execute("import datetime\nprint(datetime.datetime.now())") == "2023-05-18 12:34:56\n"


def test_long_output_is_truncated(backend):
    with Sandbox(backend, limits=ExecutorLimits(timeout_s=2, memory_mb=256, max_output_chars=100)) as box:
        observation = box.execute("print('x' * 250)")
        assert observation == "x" * 100 + "\n[Output truncated: 151 more characters were dropped.]\n"
        error = box.execute("raise ValueError('y' * 5000)")
        assert len(error) < 400 and "characters dropped" in error


def test_preamble_runs_at_every_start_and_is_hidden(backend):
    preamble = "def helper(v):\n    return 1 / v\nGREETING = 'hi'"
    with Sandbox(backend, limits=ExecutorLimits(timeout_s=1, memory_mb=256), preamble=preamble) as box:
        assert box.execute("print(GREETING)") == "hi\n"
        observation = box.execute("helper(0)")
        assert "helper" in observation and "return 1 / v" not in observation  # preamble frames are hidden
        assert box.execute("while True: pass").startswith("Execution failed. Timed out")
        assert box.execute("print(GREETING)") == "hi\n"  # run again in the fresh child
    with pytest.raises(SandboxError, match="preamble failed"):
        Sandbox(backend, limits=FAST, preamble="1 / 0")


def test_trivial_execute_is_fast(sandbox):
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        sandbox.execute("y = 1")
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.05


def test_allowed_modules_work_after_the_filter(sandbox):
    code = (
        "import json, math, re, datetime, collections, itertools, functools, random, statistics, string\n"
        "import decimal, fractions, typing, dataclasses, heapq, bisect, copy, textwrap, uuid, hashlib\n"
        "import operator, enum, calendar\n"
        "from collections.abc import Mapping\n"
        "@dataclasses.dataclass\n"
        "class Item:\n"
        "    name: str\n"
        "    tags: typing.List[str] = dataclasses.field(default_factory=list)\n"
        "class Color(enum.Enum):\n"
        "    RED = 1\n"
        "print(Item('a'), Color.RED, len(str(uuid.uuid4())), hashlib.sha256(b'x').hexdigest()[:6])\n"
        "print(decimal.Decimal('1.1') + decimal.Decimal('2.2'), fractions.Fraction(1, 3) * 3,\n"
        "      statistics.mean([1, 2]))\n"
        "print(calendar.monthrange(2024, 2), heapq.nsmallest(1, [3, 1]), re.findall(r'\\d', 'a1b2'))"
    )
    assert sandbox.execute(code) == (
        "Item(name='a', tags=[]) Color.RED 36 2d7116\n3.3 1 1.5\n(3, 29) [1] ['1', '2']\n"
    )


def test_close_and_context_manager(backend):
    box = Sandbox(backend, limits=FAST)
    pid = box.pid
    assert box.alive
    box.close()
    box.close()  # idempotent
    assert not box.alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(SandboxError):
        box.execute("print(1)")


# --------------------------------------------------------------------------------------- security


def test_all_protection_layers_are_active_here(sandbox, bystander):
    assert sandbox.protections == ALL_LAYERS
    assert bystander.protections == ALL_LAYERS


def test_open_is_refused(sandbox, bystander, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    for path in ("/etc/passwd", str(secret)):
        observation = sandbox.execute(f"print(open({path!r}).read())")
        assert observation.endswith("PermissionError: Usage of 'open' is not allowed in this environment.")
        assert SECRET not in observation
    assert_contained(sandbox, bystander)


def test_escaped_file_reads_are_blocked(escaped, bystander, tmp_path):
    assert "seccomp" in escaped.protections
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    for path in ("/etc/passwd", str(secret), f"/proc/{os.getpid()}/environ"):
        attempts = (
            f"fd = os_['open']({path!r}, 0)\nprint(os_['read'](fd, 1000))",
            f"print(FileIO({path!r}).read())",
            f"print(sys_.modules['io'].open({path!r}).read())",
        )
        for attempt in attempts:
            observation = escape(escaped, attempt)
            assert observation.startswith("Execution failed. Traceback:"), observation
            assert DENIED in observation, observation
    assert DENIED in escape(escaped, f"print(os_['listdir']({str(tmp_path)!r}))")
    assert_contained(escaped, bystander)


def test_escaped_file_writes_are_blocked(escaped, bystander, tmp_path):
    planted = tmp_path / "planted.txt"
    planted.write_text("original")
    target = tmp_path / "written.txt"
    attempts = (
        f"fd = os_['open']({str(target)!r}, os_['O_WRONLY'] | os_['O_CREAT'])\nos_['write'](fd, b'x')",
        f"FileIO({str(target)!r}, 'w').write(b'x')",
        f"os_['mkdir']({str(tmp_path / 'newdir')!r})",
        f"os_['unlink']({str(planted)!r})",
        f"os_['rename']({str(planted)!r}, {str(target)!r})",
        f"os_['truncate']({str(planted)!r}, 0)",
        f"os_['symlink']('/etc/passwd', {str(tmp_path / 'link')!r})",
        f"os_['chmod']({str(planted)!r}, 0o777)",
    )
    for attempt in attempts:
        observation = escape(escaped, attempt)
        assert DENIED in observation, observation
    assert sorted(p.name for p in tmp_path.iterdir()) == ["planted.txt"]
    assert planted.read_text() == "original"
    assert_contained(escaped, bystander)


@pytest.fixture()
def listener():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.3)
    yield server
    server.close()


def assert_no_connection(server: socket.socket) -> None:
    with pytest.raises(socket.timeout):
        server.accept()


def test_network_is_blocked(sandbox, escaped, bystander, listener):
    port = listener.getsockname()[1]
    refused = "ImportError: Usage of 'socket' is not allowed in this environment."
    assert sandbox.execute("import socket").endswith(refused)
    # The socket module was never loaded, and loading it needs a file.
    assert DENIED in escape(escaped, f"s = real_import('socket').socket()\ns.connect(('127.0.0.1', {port}))")
    # Straight to the system call through ctypes: refused by seccomp.
    observation = escape(escaped, "print(libc.socket(2, 1, 0), ctypes_.get_errno())")
    assert observation == "-1 1\n"  # EPERM
    assert_no_connection(listener)
    assert_contained(sandbox, bystander)
    assert_contained(escaped, bystander)


def test_network_namespace_alone_stops_the_network(backend, bystander, listener):
    port = listener.getsockname()[1]
    limits = ExecutorLimits(timeout_s=2, memory_mb=256, seccomp=False, import_guard=False)
    with Sandbox(backend, limits=limits) as box:
        assert box.protections == ("rlimits", "netns")
        observation = escape(box, f"s = real_import('socket').socket()\ns.connect(('127.0.0.1', {port}))")
        assert "Network is unreachable" in observation
        assert_no_connection(listener)
        assert_contained(box, bystander)


def test_seccomp_alone_stops_sockets(backend, bystander, listener):
    limits = ExecutorLimits(timeout_s=2, memory_mb=256, network_namespace=False, import_guard=False)
    with Sandbox(backend, limits=limits) as box:
        assert box.protections == ("rlimits", "seccomp")
        assert escape(box, "print(libc.socket(2, 1, 0), ctypes_.get_errno())") == "-1 1\n"
        assert_no_connection(listener)
        assert_contained(box, bystander)


def test_spawning_processes_is_blocked(escaped, bystander, tmp_path):
    marker = str(tmp_path / "spawned")
    assert escape(escaped, f"print(os_['system']('touch {marker}') != 0)") == "True\n"
    attempts = (
        "os_['fork']()",
        "os_['execv']('/bin/sh', ['sh', '-c', 'true'])",
        f"os_['posix_spawn']('/usr/bin/touch', ['touch', {marker!r}], {{}})",
        f"sys_.modules['subprocess'].run(['touch', {marker!r}])",
        f"os_['popen']('touch {marker}').read()",
    )
    for attempt in attempts:
        assert DENIED in escape(escaped, attempt), attempt
    assert not os.path.exists(marker)
    assert_contained(escaped, bystander)


@pytest.mark.parametrize("module", [
    "os", "sys", "subprocess", "socket", "shutil", "pathlib", "io", "ctypes", "multiprocessing",
    "threading", "signal", "importlib", "builtins", "pickle", "marshal", "gc", "inspect", "resource", "pty",
    "select", "fcntl", "mmap", "urllib", "http", "requests", "asyncio", "os.path", "urllib.request",
    "importlib.util",
])
def test_blocked_imports(sandbox, module):
    top = module.partition(".")[0]
    message = f"ImportError: Usage of '{top}' is not allowed in this environment."
    assert sandbox.execute(f"import {module}").endswith(message)
    assert sandbox.execute(f"from {module} import x").endswith(message)


def test_blocked_imports_leave_sandboxes_working(sandbox, bystander):
    observation = sandbox.execute("import random\nrandom._os")
    assert observation.endswith("Usage of 'random._os' is not allowed in this environment.")
    observation = sandbox.execute("import typing\ntyping.sys")  # a public name, but a blocked module
    assert observation.endswith("ImportError: Usage of 'sys' is not allowed in this environment.")
    assert_contained(sandbox, bystander)


@pytest.mark.parametrize(("code", "name"), [
    ("open('/etc/passwd')", "open"),
    ("exec('print(1)')", "exec"),
    ("eval('1 + 1')", "eval"),
    ("compile('1', 'f', 'eval')", "compile"),
    ("__import__('json')", "__import__"),
    ("breakpoint()", "breakpoint"),
    ("import time\ntime.sleep(5)", "time.sleep"),
])
def test_blocked_builtins(sandbox, code, name):
    observation = sandbox.execute(code)
    assert observation.endswith(f"PermissionError: Usage of '{name}' is not allowed in this environment.")


def test_dunder_access_and_module_internals_are_refused(sandbox, bystander):
    assert sandbox.execute("import json\nvars(json)").endswith(
        "Usage of 'vars' on modules is not allowed in this environment.")
    assert sandbox.execute("json.__dict__").endswith(
        "Usage of 'json.__dict__' is not allowed in this environment.")
    assert sandbox.execute("getattr((), '__class__')").endswith(
        "Usage of 'getattr' with the dunder name '__class__' is not allowed in this environment.")
    assert sandbox.execute("json.loads = None").endswith(
        "Modules are read-only in this environment (cannot set 'loads').")
    assert sandbox.execute("print(json.dumps({'ok': 1}))") == '{"ok": 1}\n'
    assert_contained(sandbox, bystander)


def test_infinite_loop_times_out_and_restarts(backend, bystander):
    bystander_pid = bystander.pid
    with Sandbox(backend, limits=ExecutorLimits(timeout_s=1, memory_mb=256)) as box:
        box.execute("x = 1")
        old_pid = box.pid
        started = time.monotonic()
        observation = box.execute("while True:\n    pass")
        assert time.monotonic() - started < 10
        assert observation == (
            "Execution failed. Timed out after 1 s; "
            "the Python session was restarted and its variables are lost."
        )
        assert box.pid != old_pid and box.alive
        assert box.execute("print(x)").endswith("NameError: name 'x' is not defined")
        assert_contained(box, bystander, bystander_pid)


def test_memory_bombs_are_contained(backend, bystander):
    bystander_pid = bystander.pid
    with Sandbox(backend, limits=ExecutorLimits(timeout_s=5, memory_mb=192)) as box:
        assert box.execute("x = bytearray(10**10)").endswith("\nMemoryError")
        assert_contained(box, bystander, bystander_pid)
        grow = box.execute("hog = []\nwhile True:\n    hog.append(bytearray(10**6))")
        assert grow.endswith("\nMemoryError") or grow == KILLED, grow
        assert_contained(box, bystander, bystander_pid)


def test_cpu_limit_kills_and_restarts(backend, bystander):
    with Sandbox(backend, limits=ExecutorLimits(timeout_s=20, memory_mb=256, cpu_s=1)) as box:
        started = time.monotonic()
        assert box.execute("while True:\n    pass") == KILLED
        assert time.monotonic() - started < 10
        assert_contained(box, bystander)


def test_api_call_cap(sandbox, bystander, backend):
    observation = sandbox.execute("while True:\n    apis.x.y()")
    assert observation.endswith(
        "APICallLimitError: Too many API calls: at most 50 API calls are allowed per execution.")
    assert sandbox.api_calls == 50 and len(backend.calls) == 50
    assert sandbox.execute("print(apis.math.add(a=1, b=1))") == "2\n"  # the count is per execute
    assert sandbox.api_calls == 1
    assert_contained(sandbox, bystander)


def test_host_objects_and_database_path_are_unreachable(backend, bystander, monkeypatch):
    monkeypatch.setenv("APPWORLD_DB_PATH", backend.db_path)  # a host secret the child must not inherit
    with Sandbox(backend, limits=FAST) as box:
        assert box.execute("print(*sorted(globals()))") == (  # a snapshot, without the guard's builtins
            "__doc__ __loader__ __name__ __package__ __spec__ apis\n"
        )
        assert box.execute("print([a for a in dir(apis) if not a.startswith('__')])") == "[]\n"
        assert box.execute("print(repr(apis), repr(apis.kv.get))") == (
            "<apis: call apis.<app>.<api>(**kwargs)> <API apis.kv.get>\n"
        )
        assert "TypeError" in box.execute("vars(apis)")
        assert_contained(box, bystander)
    with Sandbox(backend, limits=UNGUARDED) as box:
        # Past Python: walk every object the child holds (gc roots and everything they reference),
        # looking for the secret. Needles are passed reversed: the child keeps the agent's source text.
        assert escape(box, HUNT + "planted = {'k': ''.join(chr(ord(c) + 1) for c in 'p8y7')}\n"
                                  "print(holds('8z9q'))") == "True\n"  # positive control: finds 'q9z8'
        assert escape(box, HUNT + f"print(holds({SECRET[::-1]!r}))") == "False\n"
        surroundings = escape(box, "print(sorted(os_['environ']), sys_.argv[1:], os_['getcwd']())")
        assert surroundings == "['LANG', 'TZ'] [] /\n"
        assert DENIED in escape(box, "print(os_['open'](f'/proc/{os_[\"getppid\"]()}/environ', 0))")
        assert_contained(box, bystander)


def test_exit_quit_and_system_exit_do_not_kill_anything(sandbox, escaped, bystander):
    sandbox.execute("kept = 'yes'")
    pid = sandbox.pid
    for code in ("exit()", "quit()", "raise SystemExit(3)", "print('bye')\nexit(0)"):
        observation = sandbox.execute(code)
        assert observation.endswith(EXIT), observation
    assert sandbox.execute("print('x')\nexit()") == "x\n" + EXIT
    assert sandbox.pid == pid and sandbox.execute("print(kept)") == "yes\n"
    escaped.execute("kept = 'yes'")
    pid = escaped.pid
    assert DENIED not in escape(escaped, "sys_.exit(1)")  # the real sys.exit is a SystemExit too
    assert escaped.pid == pid and escaped.execute("print(kept)") == "yes\n"
    assert escape(escaped, "os_['_exit'](0)") == KILLED  # a hard exit: the child is restarted
    assert escaped.pid != pid
    assert_contained(sandbox, bystander)
    assert_contained(escaped, bystander)


def test_signals_to_other_processes_are_blocked(escaped, bystander):
    assert "seccomp" in escaped.protections  # never attempt these kills without the filter
    bystander_pid = bystander.pid
    attempts = (
        "os_['kill'](os_['getppid'](), 9)",
        f"os_['kill']({bystander_pid}, 9)",
        f"os_['kill']({os.getpid()}, 9)",
        "os_['kill'](0, 9)",
        f"os_['killpg'](os_['getpgid']({bystander_pid}), 9)",
    )
    for attempt in attempts:
        assert DENIED in escape(escaped, attempt), attempt
    assert_contained(escaped, bystander, bystander_pid)


def test_privileged_calls_are_blocked(escaped, bystander):
    observation = escape(escaped, "r = sys_.modules['resource']\nprint(r.getrlimit(r.RLIMIT_AS))\n"
                                  "r.setrlimit(r.RLIMIT_AS, (r.RLIM_INFINITY, r.RLIM_INFINITY))")
    assert observation.startswith(f"({256 * 1024 * 1024}, {256 * 1024 * 1024})\nExecution failed.")
    assert escape(escaped, "print(libc.ptrace(16, os_['getppid'](), 0, 0), ctypes_.get_errno())") == "-1 1\n"
    set_seccomp = "print(libc.prctl(22, 0, 0, 0, 0), ctypes_.get_errno())"  # PR_SET_SECCOMP
    assert escape(escaped, set_seccomp) == "-1 1\n"
    assert escape(escaped, "print(libc.unshare(0x40000000), ctypes_.get_errno())") == "-1 1\n"  # CLONE_NEWNS
    assert escape(escaped, "print(libc.setuid(0), ctypes_.get_errno())") == "-1 1\n"
    assert_contained(escaped, bystander)


def test_forged_protocol_frames_restart_the_child(escaped, bystander, caplog):
    escaped.execute("kept = 1")
    forge = (
        "call = [c.cell_contents for c in type(apis.x.y).__call__.__closure__][0]\n"
        "channel = call.__self__._channel\n"
        "os_['write'](channel._write_fd, b'\\xff\\xff\\xff\\xff')"
    )
    observation = escape(escaped, forge)
    assert observation == ("Execution failed. The Python session broke the sandbox protocol and was "
                           "restarted; its variables are lost.")
    assert escaped.execute("print(kept)").endswith("NameError: name 'kept' is not defined")
    assert_contained(escaped, bystander)
