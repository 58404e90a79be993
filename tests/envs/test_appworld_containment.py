"""Containment at the Python level (issue 16, item 17): the import guard must hold on its own.

Every attack below is agent code that got past the import guard as it was before this fix: it reached the
real ``sys``/``os``/``posix`` module, ``sys.modules``, the real builtins' ``open``/``exec``/``__import__``,
a frame of the sandbox or the real module behind a module view, and printed a line starting with
``REACHED`` (all 37 did, replayed against the old ``executor.py`` with netns and seccomp off). Now each must
be refused with the message given, with every OS-level layer switched off (only ``import-guard``), and with
every layer on. The OS-level layers are tested on their own, with the guard off, in
test_appworld_executor.py.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import pytest

from agentdistill_appworld import guard
from agentdistill_appworld.executor import ExecutorLimits, Sandbox

NOW = "2023-05-18T12:34:56"
GUARD_ONLY = ExecutorLimits(timeout_s=5.0, memory_mb=512, network_namespace=False, seccomp=False, rlimits=False)
ALL_LAYERS = ExecutorLimits(timeout_s=5.0, memory_mb=512)
REACHED = "REACHED"

# A dataclass field name that closes the f-string of the generated __repr__: the repr then evaluates code the
# agent never submitted as source (the class-hierarchy walk to the real sys module).
INJECTED_FIELD = (
    "x\" + str([c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]"
    ".__init__.__globals__['sys']) + \""
)


class Attack(NamedTuple):
    name: str
    refused_with: str  # how the fixed guard stops it (a fragment of the observation's last line)
    code: str


ATTACKS = [
    # -- the class hierarchy
    Attack('subclasses_to_function_globals',
           "Usage of '().__class__' is not allowed in this environment.",
        'subs = ().__class__.__base__.__subclasses__()\n'
        "wrap_close = [c for c in subs if c.__name__ == '_wrap_close'][0]\n"
        "print('REACHED', wrap_close.__init__.__globals__['sys'])\n"),
    Attack('type_subclasses_of_object_to_builtin_importer',
           "Usage of 'type.__subclasses__' is not allowed in this environment.",
        'subs = type.__subclasses__(object)\n'
        "importer = [c for c in subs if c.__name__ == 'BuiltinImporter'][0]\n"
        "print('REACHED', importer.load_module('posix'))\n"),
    Attack('mro_to_object_subclasses',
           "Usage of '[].__class__' is not allowed in this environment.",
        'root = [].__class__.__mro__[-1]\n'
        "wrap_close = [c for c in root.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
        "print('REACHED', wrap_close.__init__.__globals__['sys'])\n"),
    Attack('vars_of_type_to_subclasses',
           "Usage of 'vars' on classes is not allowed in this environment.",
        "subs = vars(type)['__subclasses__'](object)\n"
        "importer = [c for c in subs if c.__name__ == 'BuiltinImporter'][0]\n"
        "print('REACHED', importer.load_module('posix'))\n"),
    # -- functions the sandbox hands to the agent carry the sandbox's own globals
    Attack('print_function_globals',
           "Usage of 'print.__globals__' is not allowed in this environment.",
        "print('REACHED', print.__globals__['sys'])\n"),
    Attack('refused_builtin_globals_to_real_exec',
           "Usage of 'open.__globals__' is not allowed in this environment.",
        "real_builtins = open.__globals__['__builtins__']\n"
        'real_builtins.exec("import os; print(\'REACHED\', os)", {\'__builtins__\': real_builtins})\n'),
    Attack('api_error_class_globals',
           "Usage of 'APIError.__init__.__globals__' is not allowed in this environment.",
        "print('REACHED', APIError.__init__.__globals__['sys'])\n"),
    Attack('frozen_clock_classmethod_globals',
           "Usage of 'datetime.datetime.now.__func__' is not allowed in this environment.",
        'import datetime\n'
        "print('REACHED', datetime.datetime.now.__func__.__globals__['sys'])\n"),
    Attack('apis_proxy_closure_to_session',
           "Usage of 'type(apis.x.y).__call__.__closure__' is not allowed in this environment.",
        'call = type(apis.x.y).__call__.__closure__[0].cell_contents\n'
        "print('REACHED', call.__self__._executor_module.sys)\n"),
    # -- the real builtins
    Attack('builtin_function_self_is_builtins_module',
           "Usage of 'len.__self__' is not allowed in this environment.",
        "print('REACHED', len.__self__.open)\n"),
    Attack('builtins_dict_import_of_lazy_c_module',
           "Usage of '__builtins__' is not allowed in this environment.",
        "strptime = __builtins__['__import__']('_strptime')\n"
        "print('REACHED', strptime.locale.sys)\n"),
    Attack('globals_builtins_import_of_lazy_c_module',
           "KeyError: '__builtins__'",
        "strptime = globals()['__builtins__']['__import__']('_strptime')\n"
        "print('REACHED', strptime.locale.sys)\n"),
    # -- frames: generators, coroutines, async generators, tracebacks
    Attack('generator_frame_f_back_globals',
           "Usage of 'gen.gi_frame' is not allowed in this environment.",
        'def walk():\n'
        '    yield gen.gi_frame.f_back.f_back\n'
        'gen = walk()\n'
        "print('REACHED', next(gen).f_globals['sys'])\n"),
    Attack('generator_frame_real_builtins',
           "Usage of 'gen.gi_frame' is not allowed in this environment.",
        'def walk():\n'
        '    yield gen.gi_frame.f_back.f_back\n'
        'gen = walk()\n'
        "print('REACHED', next(gen).f_builtins['__import__']('os'))\n"),
    Attack('coroutine_frame_f_back',
           "Usage of 'coro.cr_frame' is not allowed in this environment.",
        'async def walk():\n'
        '    return coro.cr_frame.f_back.f_back\n'
        'coro = walk()\n'
        'try:\n'
        '    coro.send(None)\n'
        'except StopIteration as stop:\n'
        '    frame = stop.value\n'
        "print('REACHED', frame.f_globals['sys'])\n"),
    Attack('async_generator_frame_f_back',
           "Usage of 'agen.ag_frame' is not allowed in this environment.",
        'async def walk():\n'
        '    yield agen.ag_frame.f_back.f_back\n'
        'agen = walk()\n'
        'step = agen.asend(None)\n'
        'try:\n'
        '    step.send(None)\n'
        'except StopIteration as stop:\n'
        '    frame = stop.value\n'
        "print('REACHED', frame.f_globals['sys'])\n"),
    Attack('traceback_frame_f_back',
           "Usage of 'error.__traceback__' is not allowed in this environment.",
        'try:\n'
        '    1 / 0\n'
        'except ZeroDivisionError as error:\n'
        '    frame = error.__traceback__.tb_frame.f_back\n'
        "print('REACHED', frame.f_globals['sys'])\n"),
    # -- module views
    Attack('module_view_private_slot',
           "Usage of 'json._ModuleView__module' is not allowed in this environment.",
        'import json\n'
        "print('REACHED', json._ModuleView__module.codecs.sys)\n"),
    Attack('module_view_getattr_private_name',
           "Usage of 'getattr' with the private name '_ModuleView__module' is not allowed in this environment.",
        'import json\n'
        "print('REACHED', getattr(json, '_ModuleView' + '__module').codecs.sys)\n"),
    Attack('module_view_object_getattribute',
           "Usage of 'object.__getattribute__' is not allowed in this environment.",
        'import json\n'
        "print('REACHED', object.__getattribute__(json, '_ModuleView__module').codecs.sys)\n"),
    Attack('module_view_reduce_ex_state',
           "Usage of 'json.__reduce_ex__' is not allowed in this environment.",
        'import json\n'
        'state = json.__reduce_ex__(2)[2][1]\n'
        "print('REACHED', state['_ModuleView__module'].codecs.sys)\n"),
    Attack('module_view_spec_loader',
           "Usage of 'json._ModuleView__module' is not allowed in this environment.",
        'import json\n'
        "print('REACHED', json._ModuleView__module.__spec__.loader)\n"),
    # -- attribute names computed at run time or written inside strings
    Attack('getattr_with_str_subclass_lying_about_its_prefix',
           "Usage of 'getattr' with the dunder name '__class__' is not allowed in this environment.",
        'class Name(str):\n'
        '    def startswith(self, *args):\n'
        '        return False\n'
        "subs = getattr(getattr(getattr((), Name('__class__')), Name('__base__')), Name('__subclasses__'))()\n"
        "wrap_close = [c for c in subs if getattr(c, Name('__name__')) == '_wrap_close'][0]\n"
        "init = getattr(wrap_close, Name('__init__'))\n"
        "print('REACHED', getattr(init, Name('__globals__'))['sys'])\n"),
    Attack('str_format_attribute_fields',
           "Usage of '.__globals__' in a format string is not allowed in this environment.",
        "print('REACHED', '{0.__init__.__globals__[sys]}'.format(APIError('x')))\n"),
    Attack('str_format_map_attribute_fields',
           "Usage of '.__globals__' in a format string is not allowed in this environment.",
        "print('REACHED', '{e.__init__.__globals__[sys]}'.format_map({'e': APIError('x')}))\n"),
    Attack('string_formatter_get_field',
           "Usage of 'getattr' with the dunder name '__globals__' is not allowed in this environment.",
        'import string\n'
        "found, _ = string.Formatter().get_field('0.__init__.__globals__', [APIError('x')], {})\n"
        "print('REACHED', found['sys'])\n"),
    Attack('operator_attrgetter',
           "Usage of 'operator.attrgetter' with the dunder name '__globals__' is not allowed in this environment.",
        'import operator\n'
        "print('REACHED', operator.attrgetter('__init__.__globals__')(APIError('x'))['sys'])\n"),
    Attack('operator_methodcaller',
           "Usage of 'operator.methodcaller' with the dunder name '__subclasses__' is not allowed in this environment.",
        'import operator\n'
        "subs = operator.methodcaller('__subclasses__')(object)\n"
        "importer = [c for c in subs if c.__name__ == 'BuiltinImporter'][0]\n"
        "print('REACHED', importer.load_module('posix'))\n"),
    # -- library code that evaluates strings, or picks a module by a name the agent controls
    Attack('typing_forward_ref_in_another_module',
           "Evaluating code in a library module's namespace",
        'import typing\n'
        "def f(x: typing.ForwardRef('sys.modules.get', module='typing')):\n"
        '    pass\n'
        "print('REACHED', typing.get_type_hints(f)['x']('os'))\n"),
    Attack('typing_annotation_with_empty_globals_gets_real_builtins',
           "Usage of 'open' is not allowed in this environment.",
        'import typing\n'
        "def f(x: 'open'):\n"
        '    pass\n'
        "found = typing.get_type_hints(f, globalns={})['x']\n"
        "if type(found).__name__ == 'builtin_function_or_method':  # not the sandbox's refusing stand-in\n"
        "    print('REACHED', found)\n"
        "found('/etc/hostname')\n"),
    Attack('typing_class_with_spoofed_module',
           "Evaluating code in a library module's namespace",
        'import typing\n'
        "Spoof = type('Spoof', (), {'__module__': 'typing', '__annotations__': {'x': 'sys.modules.get'}})\n"
        "print('REACHED', typing.get_type_hints(Spoof)['x']('os'))\n"),
    Attack('typing_class_after_renaming_the_agent_module',
           "NameError: name 'sys' is not defined",
        'import typing\n'
        "globals()['__name__'] = 'typing'\n"
        'class Spoof:\n'
        "    x: 'sys.modules.get'\n"
        "globals()['__name__'] = '__main__'\n"
        "print('REACHED', typing.get_type_hints(Spoof)['x']('os'))\n"),
    Attack('typing_class_body_locals_spoofs_module',
           "NameError: name 'sys' is not defined",
        'import typing\n'
        'class Spoof:\n'
        "    locals()['__module__'] = 'typing'\n"
        "    x: 'sys.modules.get'\n"
        "print('REACHED', typing.get_type_hints(Spoof)['x']('os'))\n"),
    Attack("dataclass_field_name_code_injection",
           "Usage of '().__class__.__base__' is not allowed in this environment.",
        "import dataclasses\n"
        f"Injected = type('Injected', (), {{'__annotations__': {{{INJECTED_FIELD!r}: int}}}})\n"
        "Injected = dataclasses.dataclass(init=False, eq=False)(Injected)\n"
        "print('REACHED', repr(Injected()))\n"),
    Attack("dataclass_renamed_inherited_field_code_injection",
           "Usage of '().__class__.__base__' is not allowed in this environment.",
        "import dataclasses\n"
        "@dataclasses.dataclass\n"
        "class Base:\n"
        "    x: int = 0\n"
        f"dataclasses.fields(Base)[0].name = {INJECTED_FIELD!r}\n"
        "@dataclasses.dataclass(init=False, eq=False)\n"
        "class Child(Base):\n"
        "    pass\n"
        "print('REACHED', repr(Child()))\n"),
    Attack('enum_convert_reads_any_module',
           "Usage of 'enum.Enum._convert_' is not allowed in this environment.",
        'import enum\n'
        "Leak = enum.Enum._convert_('Leak', 'posix', lambda name: name == 'system')\n"
        "print('REACHED', Leak.system.value)\n"),
    # -- library code doing getattr/setattr on sys with a name the agent controls
    Attack('contextlib_redirect_stream_subclass_reads_sys_modules',
           'IndexError: list index out of range',
        'import contextlib\n'
        'caught = []\n'
        'class Leak(contextlib.redirect_stdout):\n'
        "    _stream = 'modules'\n"
        '    _old_targets = caught  # read by redirect_stdout.__enter__ instead of a list of its own\n'
        '    _new_target = None\n'
        '    def __init__(self):\n'
        '        pass\n'
        'with Leak():\n'
        '    modules = caught[0]\n'
        "print('REACHED', modules['os'])\n"),
]


def backend(app: str, api: str, kwargs: dict) -> object:
    return {"app": app, "api": api}


@pytest.fixture(scope="module")
def guard_only():
    with Sandbox(backend, limits=GUARD_ONLY, now=NOW) as box:
        yield box


@pytest.fixture(scope="module")
def all_layers():
    with Sandbox(backend, limits=ALL_LAYERS, now=NOW) as box:
        yield box


def assert_refused(box: Sandbox, attack: Attack) -> None:
    observation = box.execute(attack.code)
    assert not any(line.startswith(REACHED) for line in observation.splitlines()), observation
    assert observation.startswith("Execution failed. Traceback:"), observation
    assert attack.refused_with in observation.splitlines()[-1], observation
    assert box.execute("print(1 + 1)") == "2\n"  # and the session goes on


def test_the_guard_only_sandbox_has_no_other_layer(guard_only, all_layers):
    assert guard_only.protections == ("import-guard",)
    assert all_layers.protections == ("import-guard", "rlimits", "netns", "seccomp")


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.name for attack in ATTACKS])
def test_attack_is_refused_by_the_import_guard_alone(guard_only, attack):
    assert_refused(guard_only, attack)


def test_attacks_are_refused_with_every_layer_on(all_layers):
    for attack in ATTACKS:
        assert_refused(all_layers, attack)


def test_lazily_imported_c_helpers_work_but_are_not_importable(guard_only):
    # datetime/time.strptime import _strptime from C through the agent's __import__.
    code = ("import datetime, time\n"
            "print(datetime.datetime.strptime('2024-02-03', '%Y-%m-%d'), time.strptime('7', '%H')[3])")
    assert guard_only.execute(code) == "2024-02-03 00:00:00 7\n"
    assert guard_only.execute("import _strptime").endswith(
        "ImportError: Usage of '_strptime' is not allowed in this environment.")


def test_sources_too_deep_to_check_are_refused_cleanly(guard_only):
    assert guard_only.execute("x = " + "-" * 200_000 + "1") == (
        "Execution failed. The code is nested too deeply to be compiled.")
    assert guard_only.execute("print(2)") == "2\n"


def test_refusals_name_what_is_not_allowed(guard_only):
    observation = guard_only.execute("x = 1\ny = x.__class__")
    assert observation == (
        "Execution failed. Traceback:\n"
        '  File "<agent>", line 2, in <module>\n'
        "    y = x.__class__\n"
        "PermissionError: Usage of 'x.__class__' is not allowed in this environment."
    )
    assert guard_only.execute("print(x)").endswith("NameError: name 'x' is not defined")  # nothing ran


# ------------------------------------------------------------------------------------ the source check


@pytest.mark.parametrize(("source", "refused"), [
    ("().__class__", "().__class__"),
    ("f = (lambda: 0).__globals__", "(lambda: 0).__globals__"),
    ("x = [1]\nx.__class__.append = None", "x.__class__"),
    ("print.__self__", "print.__self__"),
    ("x = __builtins__", "__builtins__"),
    ("__import__('os')", "__import__"),
    ("__loader__.load_module('posix')", "__loader__"),
    ("__spec__", "__spec__"),
    ("import json as __builtins__", "__builtins__"),
    ("from json import loads as __import__", "__import__"),
    ("__name__ = 'typing'", "__name__"),
    ("global __builtins__", "__builtins__"),
    ("try:\n    pass\nexcept Exception as __builtins__:\n    pass", "__builtins__"),
    ("def f(__builtins__=None):\n    pass", "__builtins__"),
    ("def __getattr__(name):\n    pass", "__getattr__"),
    ("class A:\n    __module__ = 'typing'", "__module__"),
    ("class A:\n    pass\nA.__name__ = 'B'", "A.__name__"),
    ("x = object()\nx._secret", "x._secret"),
    ("g = (i for i in [])\ng.gi_frame", "g.gi_frame"),
    ("g = (i for i in [])\ng.gi_code", "g.gi_code"),
    ("frame.f_back", "frame.f_back"),
    ("frame.f_globals", "frame.f_globals"),
    ("frame.f_builtins", "frame.f_builtins"),
    ("tb.tb_frame", "tb.tb_frame"),
    ("cell.cell_contents", "cell.cell_contents"),
    ("e.__traceback__", "e.__traceback__"),
    ("object.__reduce_ex__", "object.__reduce_ex__"),
    ("f'{x.__class__}'", "x.__class__"),
    ("lambda: x.__dict__", "x.__dict__"),
    ("[y for y in x.__mro__]", "x.__mro__"),
    ("match x:\n    case {**__builtins__}:\n        pass", "__builtins__"),
])
def test_source_check_refuses(source, refused):
    with pytest.raises(guard.GuardViolation) as caught:
        guard.compile_agent_code(source, "<test>")
    assert caught.value.message == f"Usage of '{refused}' is not allowed in this environment."


@pytest.mark.parametrize("source", [
    "print(__name__, __doc__)",
    "class A:\n    __slots__ = ('a',)\n    __hash__ = None\n"
    "    def __init__(self):\n        super().__init__()\n    def __repr__(self):\n        return 'A'",
    "x = [1].__len__()\ny = {}.__getitem__",
    "p._asdict(), p._replace(a=1), P._fields, P._make([1])",
    "type(x).__name__, f.__qualname__, f.__doc__",
    "_private = 1\nfor _ in range(2):\n    pass",
    "s = '{0.real}'.format(1)",
    "async def f():\n    return 1",
])
def test_source_check_admits(source):
    guard.compile_agent_code(source, "<test>")


# ----------------------------------------------------------------------------- legitimate code still works

LEGITIMATE = """\
import collections, contextlib, dataclasses, datetime, enum, functools, json, operator, re, string, typing

@dataclasses.dataclass(frozen=True, order=True)
class Point:
    x: int
    y: int = 0
    tags: list = dataclasses.field(default_factory=list, compare=False, hash=False)

    def norm(self) -> int:
        return abs(self.x) + abs(self.y)

@dataclasses.dataclass
class Box:
    'Points in a box.'
    items: typing.List['Point']
    doubled = [n * 2 for n in range(3)]

    def __post_init__(self):
        self.count = len(self.items)

print(sorted([Point(2, 1), Point(1, 5)]), Box([Point(1)]).count, dataclasses.asdict(Point(1, 2)))
print(dataclasses.replace(Point(1, 2), y=3), [f.name for f in dataclasses.fields(Point)],
      hash(Point(1)) == hash(Point(1)))
print(typing.get_type_hints(Box)['items'], dataclasses.make_dataclass('Made', [('m', int)])(m=4))
print(Box.__doc__, Box.doubled)
Pair = collections.namedtuple('Pair', 'left right')
pair = Pair(1, 2)
print(pair._asdict(), pair._replace(left=3), Pair._fields, Pair._make([5, 6]))
class Color(enum.Enum):
    RED = 1
    GREEN = 2
print(Color.RED, Color(2).name, [c.value for c in Color], enum.Enum('Shape', 'ROUND FLAT').FLAT)
print('{0} has {1[count]} items, first {2.x}'.format('box', {'count': 3}, Point(7)))
print('{name}: {p.y}'.format_map({'name': 'pt', 'p': Point(1, 4)}), '{:>5}|{:.2f}'.format('a', 3.14159))
fmt = 'x={}'.format
print(fmt(5), list(map('<{}>'.format, [1, 2])), str.format('{0}{0}', 'ab'), getattr('{}!', 'format')(1))
print(string.Formatter().format('{0.x}-{1}', Point(9), 'z'), string.Template('$who').substitute(who='me'))
print(operator.attrgetter('x', 'y')(Point(1, 2)), operator.methodcaller('upper')('abc'), operator.itemgetter(1)([4, 5]))
class Plain:
    def __init__(self, a):
        self.a = a
    def __repr__(self):
        return f'Plain({self.a})'
    def __eq__(self, other):
        return isinstance(other, Plain) and other.a == self.a
obj = Plain(1)
setattr(obj, 'b', 2)
print(getattr(obj, 'b'), getattr(obj, 'missing', 'default'), hasattr(obj, 'a'), vars(obj))
delattr(obj, 'b')
print(obj, type(obj).__name__, Plain.__name__, obj == Plain(1), Plain.__init__.__name__)
class Failure(Exception):
    def __init__(self, message):
        super().__init__(f'wrapped: {message}')
try:
    raise Failure('x')
except Failure as error:
    print(error, error.args)
def numbers():
    yield 1
    yield 2
counter = numbers()
print(next(counter), list(counter))
@functools.lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def doubled(function):
    @functools.wraps(function)
    def inner(*args):
        return function(*args) * 2
    return inner
@doubled
def same(value):
    return value
print(fib(20), same(4), same.__name__)
class Sink:
    def __init__(self):
        self.parts = []
    def write(self, text):
        self.parts.append(text)
sink = Sink()
with contextlib.redirect_stdout(sink):
    print('hidden')
print(sink.parts)
print('sink' in globals(), 'sink' in vars(), __name__, json.dumps({'a': [1, 2]}), re.sub(r'[0-9]', '#', 'a1b2'))
async def later():
    return 5
try:
    later().send(None)
except StopIteration as stop:
    print('coroutine', stop.value, f'{Point(3).x=}', f'{3.14159:.2f}', datetime.date(2024, 1, 2).isoformat())
"""

LEGITIMATE_OUTPUT = """\
[Point(x=1, y=5, tags=[]), Point(x=2, y=1, tags=[])] 1 {'x': 1, 'y': 2, 'tags': []}
Point(x=1, y=3, tags=[]) ['x', 'y', 'tags'] True
typing.List[__main__.Point] Made(m=4)
Points in a box. [0, 2, 4]
{'left': 1, 'right': 2} Pair(left=3, right=2) ('left', 'right') Pair(left=5, right=6)
Color.RED GREEN [1, 2] Shape.FLAT
box has 3 items, first 7
pt: 4     a|3.14
x=5 ['<1>', '<2>'] abab 1!
9-z me
(1, 2) ABC 5
2 default True {'a': 1, 'b': 2}
Plain(1) Plain Plain True __init__
wrapped: x ('wrapped: x',)
1 [2]
6765 8 same
["hidden", "\\n"]
True True __main__ {"a": [1, 2]} a#b#
coroutine 5 Point(3).x=3 3.14 2024-01-02
"""


def test_legitimate_code_runs_the_same_with_and_without_the_guard(guard_only):
    assert guard_only.execute(LEGITIMATE) == LEGITIMATE_OUTPUT
    unguarded = ExecutorLimits(timeout_s=5.0, memory_mb=512, network_namespace=False, seccomp=False,
                               import_guard=False)
    with Sandbox(backend, limits=unguarded, now=NOW) as box:
        assert box.protections == ("rlimits",)
        assert box.execute(LEGITIMATE) == LEGITIMATE_OUTPUT


# ------------------------------------------------------------------- library classes, the audit hook backstop


@pytest.mark.parametrize("code", [
    "string.Formatter.get_field = lambda *args: None",
    "string.Formatter.get_field += 1",
    "setattr(string.Formatter, 'get_field', None)",
    "del string.Formatter.get_field",
    "delattr(string.Formatter, 'get_field')",
])
def test_library_classes_are_read_only(guard_only, code):
    # Replacing a library method would run agent code with the arguments the library passes it.
    observation = guard_only.execute(f"import string\n{code}")
    assert observation.endswith("PermissionError: Library classes are read-only in this environment "
                                "(cannot change 'Formatter.get_field').")
    assert guard_only.execute("import string\nprint(string.Formatter().format('{0}', 1))") == "1\n"


def test_library_classes_stay_read_only_in_a_prepared_class_body(guard_only):
    # A metaclass __prepare__ fills the class body's namespace before the body runs: it must not be able
    # to shadow the sandbox's store check there.
    code = ("import string\n"
            "Meta = type('Meta', (type,), {'__prepare__': classmethod(\n"
            "    lambda mcls, name, bases, **kw: {'__sandbox_store_target__': lambda obj, name: obj})})\n"
            "class Sneaky(metaclass=Meta):\n"
            "    string.Formatter.vformat = len\n")
    assert guard_only.execute(code).endswith("PermissionError: Library classes are read-only in this "
                                             "environment (cannot change 'Formatter.vformat').")


def test_dataclass_refuses_library_classes(guard_only):
    observation = guard_only.execute("import dataclasses, string\ndataclasses.dataclass(string.Template)")
    assert observation.endswith("PermissionError: Library classes are read-only in this environment "
                                "(cannot change 'Template.__init__').")


def test_agent_classes_stay_writable(guard_only):
    code = ("import dataclasses\nclass Own:\n    pass\nOwn.extra = 1\nsetattr(Own, 'more', 2)\n"
            "Made = dataclasses.make_dataclass('Made', ['m'])\nMade.extra = 3\nprint(Own.extra, Own.more, Made.extra)")
    assert guard_only.execute(code) == "1 2 3\n"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="contextlib.chdir is new in 3.11")
def test_library_calls_into_the_os_are_refused(guard_only):
    # contextlib.chdir calls os.chdir: no name in the agent's source is refused, the audit hook is.
    observation = guard_only.execute("import contextlib\nwith contextlib.chdir('/tmp'):\n    pass")
    assert observation.endswith("PermissionError: Usage of 'os.chdir' is not allowed in this environment.")


def test_functools_update_wrapper_copies_only_the_standard_attributes(guard_only):
    observation = guard_only.execute(
        "import functools\nclass Box:\n    pass\n"
        "functools.update_wrapper(Box(), print, assigned=('__globals__',), updated=())")
    assert observation.endswith("PermissionError: Usage of 'functools.update_wrapper' with the name "
                                "'__globals__' is not allowed in this environment.")
    observation = guard_only.execute("import functools\ndef f():\n    pass\nfunctools.wraps(type)(f)")
    assert observation.endswith("Usage of 'functools.update_wrapper' on a class or a module is not allowed "
                                "in this environment.")
