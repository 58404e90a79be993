"""The sandbox's Python-level layer (``import-guard``): what agent code may name, reach and run.

Used by the sandbox child (``executor.py`` loads this file by path: the child runs with ``-I -S``, so the
package is not importable there). It must hold on its own, with every OS-level layer switched off, against
code that looks for a way from the objects it is given to ``os``, ``sys``, the real builtins or a real
``__import__``. The routes it closes, and the rule closing each, are:

1. **Names in the agent's source** (:func:`compile_agent_code`, checked on the AST before anything runs):
   attribute names that are dunders (except a short list of protocol methods and ``__name__``/``__doc__``),
   private (a leading ``_``, except namedtuple's public ``_asdict``/``_replace``/...) or frame/code
   introspection (``gi_frame``, ``f_back``, ``tb_frame``, ...); dunder variable names such as
   ``__builtins__`` and ``__import__``. Every Python object graph escape (``().__class__.__base__
   .__subclasses__()``, ``func.__globals__``, ``len.__self__``, ``gen.gi_frame.f_back``) needs one of them.
2. **Names computed at run time**: ``getattr``/``setattr``/``delattr`` apply the same rule (to the exact
   characters of the name, so a ``str`` subclass cannot lie about them); ``str.format``/``format_map``,
   ``string.Formatter``, ``operator.attrgetter``/``methodcaller`` and ``functools.update_wrapper`` look up
   attribute names the agent writes inside strings, so they get the same rule; ``vars()``,
   ``globals()`` and ``locals()`` return snapshots without the namespace's ``__builtins__`` and refuse
   classes and modules (whose ``__dict__`` holds ``__subclasses__`` and every global).
3. **Strings that library code turns into code**: ``dataclasses`` ``exec``s source built from field names,
   ``typing`` ``eval``s string annotations and ``collections.namedtuple`` ``eval``s a lambda. An audit hook
   checks every source compiled while agent code can run against rule 1 (plus the few dunders that
   generated code uses), and the ``typing``/``dataclasses`` hooks make such code run with the agent's
   builtins in the agent's namespace, never in a library module's (whose globals hold ``sys``).
4. **Library code that picks a module by a name the agent controls** (a class's ``__module__``, the
   ``module=`` of ``typing.ForwardRef``, ``enum``'s ``sys.modules[...]``): refused for anything but the
   agent's own module.
5. **Modules**: ``import`` admits an allow-list and hands out read-only views that hold no reference to the
   module the agent could reach (no attribute, slot or ``__reduce__`` state) and refuse private names.
6. **Library classes are read-only**: every attribute store or delete in agent code (and ``setattr``/
   ``delattr``) refuses a class of a library module, which the library's own code shares (replacing a
   method there would run agent code with the library's arguments).
7. **A backstop** (an audit hook, on from the first agent code on): frames and code objects of generators,
   coroutines and tracebacks, opening files, processes, sockets, ``ctypes``, tracing and ``gc`` raise
   ``PermissionError`` even if some route above was missed.

Library functions that the hooks depend on are version-specific; if one is missing (a newer Python), the
module is taken off the allow-list and the problem is reported (fail closed).
"""

from __future__ import annotations

import _string
import ast
import builtins
import contextlib
import dataclasses
import enum
import functools
import gc
import string
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

# ------------------------------------------------------------------------------------------------ policy

# Modules agent code may import (top-level names); every other module is refused.
ALLOWED_MODULES = {
    "abc", "array", "base64", "bisect", "calendar", "cmath", "collections", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "enum", "fractions", "functools", "hashlib", "heapq",
    "html", "itertools", "json", "math", "numbers", "operator", "pprint", "random", "re", "secrets",
    "statistics", "string", "textwrap", "time", "typing", "unicodedata", "uuid",
}
# Imported before the seccomp filter forbids opening files: the allow-list plus sub-modules they load lazily.
PRELOADED_MODULES = tuple(sorted(ALLOWED_MODULES)) + (
    "collections.abc", "json.decoder", "json.encoder", "_strptime", "encodings.idna",
)
# C code imports these lazily through the *caller's* __import__ (PyImport_Import), from an agent frame:
# datetime.strptime and time.strptime load _strptime. PyImport_Import passes an empty list as fromlist (an
# import statement passes None or a tuple), ignores what __import__ returns and takes the module from
# sys.modules, so the guard answers None rather than handing the real module out.
_C_LAZY_IMPORTS = frozenset({"_strptime"})
_VISIBLE_MODULE_DUNDERS = frozenset({"__name__", "__doc__", "__version__"})

# Dunder attributes agent code may read: protocol methods (calling them is what an operator does anyway),
# super().__init__ and the name/doc strings. Everything else dunder is refused: __class__, __base__,
# __mro__, __subclasses__, __dict__, __globals__, __closure__, __code__, __self__, __func__, __builtins__,
# __reduce_ex__, __getattribute__, __traceback__, __loader__, __spec__, __module__, __annotations__ ...
SAFE_DUNDER_ATTRIBUTES = frozenset({
    "__name__", "__qualname__", "__doc__", "__init__", "__post_init__",
    "__repr__", "__str__", "__format__", "__bytes__", "__hash__", "__bool__", "__len__", "__length_hint__",
    "__iter__", "__next__", "__reversed__", "__contains__", "__getitem__", "__setitem__", "__delitem__",
    "__missing__", "__call__", "__enter__", "__exit__", "__aenter__", "__aexit__", "__aiter__",
    "__anext__", "__await__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "__neg__", "__pos__", "__abs__", "__invert__", "__complex__", "__int__", "__float__", "__index__",
    "__round__", "__trunc__", "__floor__", "__ceil__", "__copy__", "__deepcopy__",
    *(f"__{prefix}{op}__" for op in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod",
                                     "divmod", "pow", "lshift", "rshift", "and", "xor", "or")
      for prefix in ("", "r", "i")),
})
# namedtuple's public API happens to start with "_"; nothing else private is readable.
NAMEDTUPLE_ATTRIBUTES = frozenset({"_asdict", "_replace", "_fields", "_field_defaults", "_make"})
# Frames and code objects: a frame's f_back/f_globals/f_builtins lead to the sandbox's own globals.
INTROSPECTION_ATTRIBUTES = frozenset({
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "cr_origin",
    "ag_frame", "ag_code", "ag_await", "tb_frame", "tb_next", "f_back", "f_builtins", "f_code",
    "f_globals", "f_locals", "f_trace", "co_code", "co_consts", "co_names", "cell_contents",
})
# str.format and str.format_map read attributes named inside the template ("{0.__class__}"): agent code
# gets them through _format_attribute, which checks the template first.
FORMAT_METHODS = frozenset({"format", "format_map"})
# Dunder names agent code may read as variables (module scope: '__name__' is '__main__').
SAFE_DUNDER_NAMES = frozenset({"__name__", "__doc__", "__debug__"})
# Dunder names a class body may assign (besides defining dunder methods): __slots__, __hash__ = None...
CLASS_BODY_DUNDERS = frozenset({"__slots__", "__match_args__"}) | SAFE_DUNDER_ATTRIBUTES
# Generated code (dataclasses' methods) also uses these; an injected field name still cannot use the rest.
GENERATED_ATTRIBUTES = frozenset({"__class__", "__qualname__", "__setattr__", "__delattr__"})
GENERATED_NAMES = frozenset({"__create_fn__", "__setattr__", "__delattr__"})

FORMAT_HELPER = "__sandbox_format_attribute__"  # dunders: agent code can neither call nor rebind them
STORE_HELPER = "__sandbox_store_target__"
_REFUSED_BUILTINS = ("open", "exec", "eval", "compile", "breakpoint", "help")


def not_allowed(what: str, how: str = "") -> str:
    return f"Usage of '{what}'{how} is not allowed in this environment."


class GuardViolation(Exception):
    """Agent source that names something the guard does not allow (reported as a PermissionError)."""

    def __init__(self, lineno: int, message: str) -> None:
        super().__init__(message)
        self.lineno, self.message = lineno, message


def is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def attribute_refusal(name: str, *, store: bool = False) -> str | None:
    """Why agent code may not read (or with ``store``, set or delete) the attribute ``name``; None if it may."""
    if is_dunder(name):
        return None if not store and name in SAFE_DUNDER_ATTRIBUTES else "dunder"
    if name.startswith("_"):
        return None if not store and name in NAMEDTUPLE_ATTRIBUTES else "private"
    if name in INTROSPECTION_ATTRIBUTES:
        return "introspection"
    return None


def _exact_str(name: Any) -> str:
    # A str subclass can override startswith/__eq__/__hash__ to pass a check while getattr() uses its
    # characters; the checks and the lookup both use this exact copy of those characters.
    if not isinstance(name, str):
        raise TypeError(f"attribute name must be string, not '{type(name).__name__}'")
    return str.__str__(name)


# --------------------------------------------------------------------------------------- the source check


class _Checker(ast.NodeVisitor):
    """Refuses the names of rule 1 (module docstring) anywhere in a tree; ``generated`` admits the few
    dunders that dataclasses' generated methods use."""

    def __init__(self, *, generated: bool) -> None:
        self._generated = generated
        self._scopes = ["module"]

    def _fail(self, node: ast.AST, what: str) -> None:
        raise GuardViolation(getattr(node, "lineno", 1), not_allowed(what))

    def _check_binding(self, node: ast.AST, name: str | None, *, store: bool) -> None:
        if name is None or not is_dunder(name):
            return
        if self._generated and (name.startswith("__dataclass") or name in GENERATED_NAMES
                                or name in SAFE_DUNDER_ATTRIBUTES):
            return
        if not store and name in SAFE_DUNDER_NAMES:
            return
        if store and self._scopes[-1] == "class" and name in CLASS_BODY_DUNDERS:
            return
        self._fail(node, name)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.generic_visit(node)  # the innermost offending attribute is the one reported
        store = not isinstance(node.ctx, ast.Load)
        if store and self._generated and not (isinstance(node.value, ast.Name)
                                               and node.value.id in ("self", "__dataclass_self__")):
            # Generated methods only assign to self; agent code's stores are checked at run time
            # (_store_target), which a field name injected into generated code would otherwise skip.
            self._fail(node, ast.unparse(node))
        refusal = attribute_refusal(node.attr, store=store)
        if refusal and not (self._generated and node.attr in GENERATED_ATTRIBUTES):
            text = ast.unparse(node)
            self._fail(node, text if len(text) <= 60 else node.attr)

    def visit_Name(self, node: ast.Name) -> None:
        self._check_binding(node, node.id, store=not isinstance(node.ctx, ast.Load))

    def _visit_scope(self, node: ast.AST, kind: str) -> None:
        self._scopes.append(kind)
        try:
            self.generic_visit(node)
        finally:
            self._scopes.pop()

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        name = getattr(node, "name", None)
        # Dunder methods (__init__, __repr__, __eq__...) are ordinary in a class body, nowhere else.
        if name and is_dunder(name) and self._scopes[-1] != "class" and not self._generated:
            self._fail(node, name)
        for child in (*getattr(node, "decorator_list", ()), *getattr(node, "type_params", ())):
            self.visit(child)
        self.visit(node.args)
        if getattr(node, "returns", None) is not None:
            self.visit(node.returns)
        self._scopes.append("function")
        try:
            for statement in (node.body if isinstance(node.body, list) else [node.body]):
                self.visit(statement)
        finally:
            self._scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._check_binding(node, node.name, store=True)
        for child in (*node.decorator_list, *getattr(node, "type_params", ()), *node.bases, *node.keywords):
            self.visit(child)
        self._scopes.append("class")
        try:
            for statement in node.body:
                self.visit(statement)
        finally:
            self._scopes.pop()

    def visit_arg(self, node: ast.arg) -> None:
        self._check_binding(node, node.arg, store=True)
        self.generic_visit(node)

    def visit_alias(self, node: ast.alias) -> None:  # import x as __builtins__
        self._check_binding(node, node.asname or node.name.partition(".")[0], store=True)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        self._check_binding(node, node.name, store=True)
        self.generic_visit(node)

    def _visit_names(self, node: ast.Global | ast.Nonlocal) -> None:
        for name in node.names:
            self._check_binding(node, name, store=True)

    visit_Global = visit_Nonlocal = _visit_names

    def visit_TypeVar(self, node: ast.AST) -> None:  # def f[__builtins__](): ... (3.12+)
        self._check_binding(node, getattr(node, "name", None), store=True)
        self.generic_visit(node)

    visit_ParamSpec = visit_TypeVarTuple = visit_TypeVar

    def visit_MatchAs(self, node: ast.AST) -> None:
        self._check_binding(node, getattr(node, "name", None), store=True)
        self.generic_visit(node)

    visit_MatchStar = visit_MatchAs

    def visit_MatchMapping(self, node: ast.AST) -> None:
        self._check_binding(node, getattr(node, "rest", None), store=True)
        self.generic_visit(node)

    def visit_comprehension_scope(self, node: ast.AST) -> None:
        self._visit_scope(node, "function")

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_comprehension_scope


class _Rewriter(ast.NodeTransformer):
    """Two run-time checks that the source alone cannot decide, inserted where they apply."""

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        # A class body looks names up in its own namespace first, which a metaclass __prepare__ fills: the
        # helpers are declared global there, so they cannot be shadowed.
        self.generic_visit(node)
        docstring = ast.get_docstring(node, clean=False) is not None  # must stay the first statement
        node.body.insert(int(docstring), ast.copy_location(ast.Global([FORMAT_HELPER, STORE_HELPER]), node))
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Load):
            # obj.format / obj.format_map (read, not only called: `f = s.format` must be covered too) become
            # __sandbox_format_attribute__(obj, 'format'), which checks str templates for attribute fields.
            if node.attr in FORMAT_METHODS:
                call = ast.Call(ast.Name(FORMAT_HELPER, ast.Load()), [node.value, ast.Constant(node.attr)], [])
                return ast.copy_location(call, node)
            return node
        # obj.attr = ... / del obj.attr: obj becomes __sandbox_store_target__(obj, 'attr'), which refuses
        # library classes (a class of an allowed module is shared by the library code that uses it).
        target = ast.Call(ast.Name(STORE_HELPER, ast.Load()), [node.value, ast.Constant(node.attr)], [])
        node.value = ast.copy_location(target, node.value)
        return node


def check_tree(tree: ast.AST, *, generated: bool = False) -> None:
    try:
        _Checker(generated=generated).visit(tree)
    except RecursionError:
        raise GuardViolation(1, "The code is nested too deeply to be checked in this environment.") from None


def compile_agent_code(source: str, filename: str, mode: str = "exec") -> types.CodeType:
    """Parse, check (raising :class:`GuardViolation`) and compile agent code; SyntaxError passes through."""
    with _trusting(source):
        tree = ast.parse(source, filename, mode)
    check_tree(tree)
    tree = ast.fix_missing_locations(_Rewriter().visit(tree))
    with _trusting(tree):
        return compile(tree, filename, mode, dont_inherit=True)


def compile_trusted_code(source: str, filename: str) -> types.CodeType:
    """Compile the host's own preamble (trusted: not checked) once the audit hook is on."""
    with _trusting(source):
        return compile(source, filename, "exec", dont_inherit=True)


# ----------------------------------------------------------------------------- names computed at run time


def _format_attribute(obj: Any, name: str) -> Any:
    """``obj.format``/``obj.format_map`` for agent code: a str's (bound or unbound) method checks its template."""
    return _wrap_format_method(getattr(obj, name))


def _wrap_format_method(value: Any) -> Any:
    if value is _STR_FORMAT:
        return _str_format
    if value is _STR_FORMAT_MAP:
        return _str_format_map
    if type(value) is types.BuiltinMethodType and isinstance(value.__self__, str):
        template, method = value.__self__, value.__name__
        if method == "format":
            return functools.partial(_str_format, template)
        if method == "format_map":
            return functools.partial(_str_format_map, template)
    return value


def _str_format(template: Any, /, *args: Any, **kwargs: Any) -> str:
    if not isinstance(template, str):
        return _STR_FORMAT(template, *args, **kwargs)  # the usual TypeError
    text = str.__str__(template)
    _check_format_fields(text)
    return _STR_FORMAT(text, *args, **kwargs)


def _str_format_map(template: Any, mapping: Any, /) -> str:
    if not isinstance(template, str):
        return _STR_FORMAT_MAP(template, mapping)
    text = str.__str__(template)
    _check_format_fields(text)
    return _STR_FORMAT_MAP(text, mapping)


def _check_format_fields(text: str, depth: int = 0) -> None:
    # The same parser str.format uses; "{0.attr}" reads attr, "{0[key]}" only subscripts. Nested fields
    # in a format spec ("{0:{1.attr}}") are formatted too, hence the recursion.
    try:
        parts = list(_string.formatter_parser(text))
    except ValueError:
        return  # str.format raises the same error
    for _literal, field, spec, _conversion in parts:
        if field is None:
            continue
        try:
            rest = list(_string.formatter_field_name_split(field)[1])
        except ValueError:
            continue
        for is_attribute, key in rest:
            if is_attribute and attribute_refusal(key) is not None:
                raise PermissionError(not_allowed(f".{key}", " in a format string"))
        if spec and depth < 3:
            _check_format_fields(spec, depth + 1)


def _checked_getattr(obj: Any, name: Any, *default: Any) -> Any:
    name = _exact_str(name)
    refusal = attribute_refusal(name)
    if refusal:
        raise PermissionError(not_allowed("getattr", f" with the {refusal} name {name!r}"))
    if name in FORMAT_METHODS:
        try:
            return _format_attribute(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
    return getattr(obj, name, *default)


def _checked_setattr(obj: Any, name: Any, value: Any) -> None:
    name = _exact_str(name)
    refusal = attribute_refusal(name, store=True)
    if refusal:
        raise PermissionError(not_allowed("setattr", f" with the {refusal} name {name!r}"))
    setattr(_store_target(obj, name), name, value)


def _checked_delattr(obj: Any, name: Any) -> None:
    name = _exact_str(name)
    refusal = attribute_refusal(name, store=True)
    if refusal:
        raise PermissionError(not_allowed("delattr", f" with the {refusal} name {name!r}"))
    delattr(_store_target(obj, name), name)


def _store_target(obj: Any, name: str) -> Any:
    """``obj``, unless it is a class of a library module: those are read-only (CPython audits no class
    attribute change, so the guard checks every store in agent code and every setattr/delattr)."""
    if _is_class(obj) and _is_library_class(obj):
        qualname = type.__dict__["__qualname__"].__get__(obj)
        raise PermissionError(f"Library classes are read-only in this environment (cannot change "
                              f"'{qualname}.{name}').")
    return obj


def _namespace_snapshot(namespace: Any) -> dict:
    # A copy: writing to it cannot rebind __name__ (which becomes the __module__ of the agent's classes) or
    # __builtins__; and the agent's builtins dict (the guard's own functions) is left out.
    return {key: value for key, value in dict(namespace).items() if key != "__builtins__"}


def _agent_globals() -> dict:
    return _namespace_snapshot(sys._getframe(1).f_globals)


def _agent_locals() -> dict:
    return _namespace_snapshot(sys._getframe(1).f_locals)


def _agent_vars(*args: Any) -> dict:
    if not args:
        return _namespace_snapshot(sys._getframe(1).f_locals)
    if len(args) > 1:
        raise TypeError(f"vars expected at most 1 argument, got {len(args)}")
    obj = args[0]
    if isinstance(obj, (types.ModuleType, ModuleView)):
        raise PermissionError(not_allowed("vars", " on modules"))
    if _is_class(obj):  # a class's __dict__ holds __subclasses__ (type), __init__ functions and the like
        raise PermissionError(not_allowed("vars", " on classes"))
    # A snapshot without private and dunder keys: a library object's private state stays private.
    return {key: value for key, value in vars(obj).items()
            if not isinstance(key, str) or attribute_refusal(str.__str__(key)) is None}


def refuse(name: str) -> Callable[..., Any]:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(not_allowed(name))

    refused.__name__ = refused.__qualname__ = name.rpartition(".")[2]
    return refused


def _attrgetter(attr: Any, *attrs: Any) -> Callable[[Any], Any]:
    # operator.attrgetter reads dotted attribute paths with the real getattr: rebuilt on _checked_getattr.
    paths = [_exact_str(name).split(".") for name in (attr, *attrs)]
    for path in paths:
        for part in path:
            refusal = attribute_refusal(part)
            if refusal:
                raise PermissionError(not_allowed("operator.attrgetter", f" with the {refusal} name {part!r}"))

    def follow(obj: Any, path: list[str]) -> Any:
        for part in path:
            obj = _checked_getattr(obj, part)
        return obj

    def attrgetter(obj: Any) -> Any:
        if len(paths) == 1:
            return follow(obj, paths[0])
        return tuple(follow(obj, path) for path in paths)

    return attrgetter


def _methodcaller(name: Any, /, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    name = _exact_str(name)
    refusal = attribute_refusal(name)
    if refusal:
        raise PermissionError(not_allowed("operator.methodcaller", f" with the {refusal} name {name!r}"))

    def methodcaller(obj: Any) -> Any:
        return _checked_getattr(obj, name)(*args, **kwargs)

    return methodcaller


# Module attributes replaced in the agent's view of a module.
_VIEW_OVERRIDES: dict[tuple[str, str], Any] = {
    ("operator", "attrgetter"): _attrgetter,
    ("operator", "methodcaller"): _methodcaller,
}


# ------------------------------------------------------------------------------------------ module views

_VIEW_TARGETS: dict[int, types.ModuleType] = {}  # id(view) -> module; views are cached, so ids stay valid
_VIEWS: dict[str, ModuleView] = {}


class ModuleView:
    """A read-only view of an allowed module. It has no slot, attribute or pickle state holding the module
    (the old ``_ModuleView__module`` slot handed it out); names starting with ``_`` and dunders other than
    ``__name__``/``__doc__``/``__all__``/``__version__`` are refused, and so are sub-modules not allowed."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("module views cannot be created by agent code")

    def __getattr__(self, name: str) -> Any:
        module = _VIEW_TARGETS.get(id(self))
        if module is None:
            raise AttributeError(name)
        name = _exact_str(name)
        if name == "__all__":
            return _public_names(module)
        if name.startswith("_") and name not in _VISIBLE_MODULE_DUNDERS:
            raise PermissionError(not_allowed(f"{module.__name__}.{name}"))
        override = _VIEW_OVERRIDES.get((module.__name__, name))
        if override is not None:
            return override
        value = getattr(module, name)
        return module_view(value) if isinstance(value, types.ModuleType) else value

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        module = _VIEW_TARGETS.get(id(self))
        return module.__doc__ if module is not None else None

    def __setattr__(self, name: str, value: Any) -> None:
        raise PermissionError(f"Modules are read-only in this environment (cannot set '{name}').")

    def __delattr__(self, name: str) -> None:
        raise PermissionError(f"Modules are read-only in this environment (cannot delete '{name}').")

    def __dir__(self) -> list[str]:
        module = _VIEW_TARGETS.get(id(self))
        return _public_names(module) if module is not None else []

    def __repr__(self) -> str:
        module = _VIEW_TARGETS.get(id(self))
        return f"<module {module.__name__!r}>" if module is not None else "<module view>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("module views cannot be pickled or copied")


def module_allowed(name: str) -> bool:
    return name.partition(".")[0] in ALLOWED_MODULES


def _public_names(module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name in vars(module) if not name.startswith("_")]
    return [name for name in names
            if isinstance(name, str) and not name.startswith("_")
            and not (isinstance(getattr(module, name, None), types.ModuleType)
                     and not module_allowed(getattr(module, name).__name__))]


def module_view(module: types.ModuleType) -> ModuleView:
    if not module_allowed(module.__name__):
        raise ImportError(not_allowed(module.__name__.partition(".")[0]))
    view = _VIEWS.get(module.__name__)
    if view is None or _VIEW_TARGETS.get(id(view)) is not module:
        view = object.__new__(ModuleView)
        _VIEW_TARGETS[id(view)] = module
        _VIEWS[module.__name__] = view
    return view


def _guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (),
                    level: int = 0) -> Any:
    # Only `import` statements reach this: a direct __import__(...) is refused in the source (a dunder name)
    # and the builtins dict holding this function is not reachable.
    name = _exact_str(name)
    if name in _C_LAZY_IMPORTS and type(fromlist) is list and not fromlist and name in sys.modules:
        return None
    if level:
        raise ImportError("Relative imports are not supported in this environment.")
    if not module_allowed(name):
        raise ImportError(not_allowed(name.partition(".")[0]))
    try:
        module = __import__(name, None, None, fromlist, 0)
    except OSError:  # a module not pre-imported needs a file, and opening files is forbidden
        raise ImportError(f"Module '{name}' is not available in this environment.") from None
    return module_view(module)


def agent_builtins(extra: dict[str, Any]) -> dict[str, Any]:
    """The builtins of agent code: the real ones with the refused and guarded ones replaced, plus ``extra``."""
    safe = dict(vars(builtins))
    for name in ("__loader__", "__spec__"):  # the BuiltinImporter would load any built-in module
        safe.pop(name, None)
    for name in _REFUSED_BUILTINS:
        safe[name] = refuse(name)
    safe.update(
        __import__=_guarded_import, getattr=_checked_getattr, setattr=_checked_setattr,
        delattr=_checked_delattr, vars=_agent_vars, globals=_agent_globals, locals=_agent_locals,
    )
    safe[FORMAT_HELPER] = _format_attribute
    safe[STORE_HELPER] = _store_target
    safe.update(extra)
    return safe


# ------------------------------------------------------------------------------ library code (rules 3, 4)

_STR_FORMAT = str.format
_STR_FORMAT_MAP = str.format_map
_MISSING = object()
_STATE: dict[str, Any] = {"namespace": None, "builtins": None, "privileged": ()}
_LIBRARY_NAMESPACE = ("Evaluating code in a library module's namespace (through a class's __module__ or a "
                      "ForwardRef's module) is not allowed in this environment.")


def _is_class(obj: Any) -> bool:
    # isinstance(obj, type) may consult obj.__class__, i.e. run agent code; the type flags cannot lie.
    return bool(type.__dict__["__flags__"].__get__(type(obj)) & (1 << 31))


def _is_privileged_namespace(namespace: Any) -> bool:
    """A module's globals (or the sandbox's own): evaluating agent strings there would reach ``sys``."""
    if not isinstance(namespace, dict) or namespace is _STATE["namespace"]:
        return False
    if dict.get(namespace, "__builtins__", _MISSING) not in (_MISSING, _STATE["builtins"]):
        return True  # the real builtins: every library module's globals
    if any(namespace is privileged for privileged in _STATE["privileged"]):
        return True
    return any(getattr(module, "__dict__", None) is namespace for module in list(sys.modules.values()))


def _evaluation_globals(namespace: Any) -> Any:
    """The globals for code built from agent strings: the agent's namespace, or a copy of a plain dict with
    the agent's builtins (eval/exec would otherwise insert the *real* builtins of the calling library)."""
    if namespace is None:
        namespace = {}
    if not isinstance(namespace, dict) or namespace is _STATE["namespace"]:
        return namespace
    if _is_privileged_namespace(namespace):
        raise PermissionError(_LIBRARY_NAMESPACE)
    if dict.get(namespace, "__builtins__", _MISSING) is _MISSING:
        namespace = dict.copy(namespace)
        namespace["__builtins__"] = _STATE["builtins"]
    return namespace


def _harden_typing() -> None:
    # typing.get_type_hints() eval()s string annotations in the namespace of the class's __module__ (which
    # the agent can set to 'typing' through type()'s dict), in a ForwardRef's module= or in a bare dict that
    # gets the real builtins. Every evaluation goes through ForwardRef._evaluate.
    original = typing.ForwardRef._evaluate

    def _evaluate(self: typing.ForwardRef, globalns: Any, localns: Any, *args: Any, **kwargs: Any) -> Any:
        argument = _exact_str(self.__forward_arg__)
        source = f"({argument},)[0]" if argument.startswith("*") else argument
        try:
            code = compile_agent_code(source, "<annotation>", "eval")
        except GuardViolation as exc:
            raise PermissionError(exc.message) from None
        module = self.__forward_module__
        if module is not None:  # what the original does with module=, done here so that it is checked
            globalns = getattr(sys.modules.get(module, None), "__dict__", globalns)
        if globalns is None and localns is None:
            globalns = localns = {}
        elif globalns is None:
            globalns = localns
        elif localns is None:
            localns = globalns
        if _is_privileged_namespace(localns):
            raise PermissionError(_LIBRARY_NAMESPACE)
        globalns = _evaluation_globals(globalns)
        self.__forward_code__ = code  # the checked source, whatever __forward_code__ held before
        self.__forward_module__ = None
        try:
            return original(self, globalns, localns, *args, **kwargs)
        finally:
            self.__forward_module__ = module

    typing.ForwardRef._evaluate = _evaluate


def _generated_code_globals(namespace: Any) -> Any:
    # The agent's own namespace, or else a fresh one with only the agent's builtins: the generated methods
    # get everything else (field types, defaults, MISSING...) as parameters.
    if namespace is _STATE["namespace"]:
        return namespace
    return {"__builtins__": _STATE["builtins"]}


def _harden_dataclasses() -> None:
    # dataclasses exec()s methods built from field names in sys.modules[cls.__module__].__dict__ (or in {},
    # which gets the real builtins); make_dataclass() classes claim module 'types' before 3.12. The
    # generated source is checked by the audit hook (rule 3); here it is made to run with the agent's
    # builtins, never in a library module's globals.
    original_process_class = dataclasses._process_class

    def _process_class(cls: Any, *args: Any, **kwargs: Any) -> Any:
        # It replaces methods of the class it is given: a library class is read-only (rule 6).
        _store_target(cls, "__init__")
        return original_process_class(cls, *args, **kwargs)

    dataclasses._process_class = _process_class
    if hasattr(dataclasses, "_create_fn"):  # Python 3.10 - 3.12
        original_create_fn = dataclasses._create_fn

        def _create_fn(name: str, args: Any, body: Any, *, globals: Any = None, **kwargs: Any) -> Any:
            return original_create_fn(name, args, body, globals=_generated_code_globals(globals), **kwargs)

        dataclasses._create_fn = _create_fn
    elif hasattr(dataclasses, "_FuncBuilder"):  # Python 3.13+
        original_init = dataclasses._FuncBuilder.__init__

        def __init__(self: Any, globals: Any) -> None:
            original_init(self, _generated_code_globals(globals))

        dataclasses._FuncBuilder.__init__ = __init__
    else:
        raise LookupError("dataclasses generates methods in an unknown way")


def _harden_string() -> None:
    # string.Formatter().get_field("0.__init__.__globals__", ...) returned the object the path leads to.
    def get_field(self: string.Formatter, field_name: str, args: Any, kwargs: Any) -> Any:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attribute, key in rest:
            obj = _checked_getattr(obj, key) if is_attribute else obj[key]
        return obj, first

    string.Formatter.get_field = get_field


_REDIRECTED: dict[int, list[Any]] = {}  # id(redirect_stdout object) -> the streams it replaced


def _harden_contextlib() -> None:
    # redirect_stdout/stderr did getattr(sys, self._stream) and setattr(sys, ...): a subclass with
    # `_stream = 'modules'` and its own `_old_targets` list read sys.modules. The stream now follows from the
    # class alone, and the replaced streams are kept here, out of the agent's reach.
    redirect_base = contextlib.redirect_stdout.__mro__[1]

    def stream_of(manager: Any) -> str:
        if isinstance(manager, contextlib.redirect_stdout):
            return "stdout"
        if isinstance(manager, contextlib.redirect_stderr):
            return "stderr"
        raise PermissionError(not_allowed("redirecting anything but sys.stdout or sys.stderr"))

    def __enter__(self: Any) -> Any:
        stream, target = stream_of(self), self._new_target
        _REDIRECTED.setdefault(id(self), []).append(getattr(sys, stream))
        setattr(sys, stream, target)
        return target

    def __exit__(self: Any, *exc_info: Any) -> None:
        stream, saved = stream_of(self), _REDIRECTED.get(id(self))
        if saved:
            setattr(sys, stream, saved.pop())
            if not saved:
                del _REDIRECTED[id(self)]

    if "_stream" not in vars(redirect_base):
        raise LookupError("contextlib's redirect classes changed")
    redirect_base.__enter__, redirect_base.__exit__ = __enter__, __exit__


def _harden_functools() -> None:
    # update_wrapper(wrapper, wrapped, assigned=('__globals__',)) read any attribute of `wrapped` and handed it
    # to the agent's wrapper (its __setattr__, or the .update of its __dict__: a class's __dict__ holds
    # __subclasses__). Only the standard names are copied, and never a class's or a module's __dict__.
    original = functools.update_wrapper
    standard_assigned, standard_updated = functools.WRAPPER_ASSIGNMENTS, functools.WRAPPER_UPDATES

    def update_wrapper(wrapper: Any, wrapped: Any, assigned: Any = standard_assigned,
                       updated: Any = standard_updated) -> Any:
        assigned = tuple(_exact_str(name) for name in assigned)
        updated = tuple(_exact_str(name) for name in updated)
        for name in (*assigned, *updated):
            if name not in standard_assigned and name not in standard_updated:
                raise PermissionError(not_allowed("functools.update_wrapper", f" with the name {name!r}"))
        if updated and (_is_class(wrapped) or isinstance(wrapped, (types.ModuleType, ModuleView))):
            raise PermissionError(not_allowed("functools.update_wrapper", " on a class or a module"))
        return original(wrapper, wrapped, assigned, updated)

    functools.update_wrapper = update_wrapper


class _AgentModules:
    """``sys.modules`` as enum sees it: only the agent's own module (rule 4)."""

    def __getitem__(self, name: Any) -> types.ModuleType:
        if name == "__main__" and type(name) is str:
            return sys.modules["__main__"]
        raise PermissionError(not_allowed(f"sys.modules[{name!r}]"))

    def get(self, name: Any, default: Any = None) -> Any:
        return self[name]

    def __contains__(self, name: Any) -> bool:
        return name == "__main__" and type(name) is str


class _EnumSys(types.ModuleType):
    # enum.global_enum() writes the members into sys.modules[cls.__module__].__dict__ and
    # Enum._convert_() turns any module's globals into members: both pick the module by a name the agent
    # controls. Named 'sys' so that a module view still refuses it.
    modules = property(lambda self: _AgentModules())

    def __getattr__(self, name: str) -> Any:
        return getattr(sys, name)


def _harden_enum() -> None:
    if getattr(enum, "sys", None) is not sys:
        raise LookupError("enum no longer uses sys")
    enum.sys = _EnumSys("sys")


_HARDENING = {  # module -> what makes it safe for the agent; on failure the module is not importable
    "typing": _harden_typing, "dataclasses": _harden_dataclasses, "string": _harden_string,
    "contextlib": _harden_contextlib, "functools": _harden_functools, "enum": _harden_enum,
}


# ------------------------------------------------------------------------------------ the backstop (rule 7)

# Audit events agent code (and the library code it calls) may raise; the handlers below take a few more;
# any other (open, os.*, subprocess.Popen, socket.*, ctypes.*, sys.settrace, gc.*, code.__new__...) is
# refused with PermissionError.
_ALLOWED_EVENTS = frozenset({
    "builtins.id", "exec", "import", "sys._getframe", "sys._getframemodulename", "array.__new__",
    "object.__setattr__", "object.__delattr__",  # raised for a function's __qualname__, __doc__...
    "sys.unraisablehook", "sys.excepthook", "cpython._PySys_ClearAuditHooks",
    "cpython.PyInterpreterState_Clear",
})
# Attribute reads CPython audits: frames and code objects of generators, coroutines and tracebacks.
# (Function __code__/__defaults__ are audited too, but inspect.signature reads them for dataclasses.)
_AUDITED_FRAME_ATTRIBUTES = frozenset({
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "tb_frame", "f_code",
})
_TRUSTED: list[Any] = []  # objects the guard itself is compiling or walking right now (compared by identity)


class _trusting:
    """While the guard itself compiles a source or walks a traceback, the hook lets exactly these objects
    through (a plain class: a generator-based context manager would run more code inside the hook).

    The compile event reports a str source as a new UTF-8 bytes copy, so a source is trusted by that exact
    text. The garbage collector is off meanwhile: no agent __del__ can run (and compile) inside the window.
    """

    def __init__(self, *objects: Any) -> None:
        self._objects = [*objects]
        for obj in objects:
            if isinstance(obj, str):
                with contextlib.suppress(UnicodeEncodeError):  # compile() refuses such a source anyway
                    self._objects.append(obj.encode("utf-8"))

    def __enter__(self) -> None:
        self._collecting = gc.isenabled()
        gc.disable()
        _TRUSTED.extend(self._objects)

    def __exit__(self, *exc_info: Any) -> None:
        del _TRUSTED[len(_TRUSTED) - len(self._objects):]
        if self._collecting:
            gc.enable()


def _is_trusted(obj: Any) -> bool:
    if isinstance(obj, bytes):
        return any(type(trusted) is bytes and trusted == obj for trusted in _TRUSTED)
    return any(obj is trusted for trusted in _TRUSTED)


def _is_library_class(cls: type) -> bool:
    # Read from the type itself: a metaclass property cannot pretend another module.
    module_name = type.__dict__["__module__"].__get__(cls)
    if type(module_name) is not str or module_name == "__main__":
        return False
    module = sys.modules.get(module_name)
    return module is not None and vars(module).get(type.__dict__["__name__"].__get__(cls)) is cls


def _check_generated_source(source: Any) -> None:
    if isinstance(source, ast.AST):
        tree = source
    else:
        try:
            with _trusting(source):
                tree = ast.parse(source)
        except (SyntaxError, ValueError, TypeError):
            return  # compile() raises the same error
    try:
        check_tree(tree, generated=True)
    except GuardViolation as exc:
        raise PermissionError(exc.message) from None


def _audit(event: str, args: tuple) -> None:
    if event in _ALLOWED_EVENTS:
        return
    if event == "object.__getattr__":
        if args[1] in _AUDITED_FRAME_ATTRIBUTES and not _is_trusted(args[0]):
            raise PermissionError(not_allowed(args[1]))
        return
    if event == "compile":
        if not _is_trusted(args[0]):
            _check_generated_source(args[0])
        return
    raise PermissionError(not_allowed(event))


def traceback_entries(tb: types.TracebackType | None) -> list[tuple[str, int, str]]:
    """(filename, line number, function name) of each traceback entry; the sandbox's own way past the hook."""
    entries = []
    while tb is not None:
        with _trusting(tb):
            frame = tb.tb_frame
        with _trusting(frame):
            code = frame.f_code
        entries.append((code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    return entries


def install(namespace: dict[str, Any], privileged: tuple[dict[str, Any], ...] = ()) -> list[str]:
    """Harden the library modules and turn the audit hook on; returns problems. Call once, after the
    allowed modules are imported and right before agent code may run: the hook cannot be removed."""
    _STATE.update(namespace=namespace, builtins=namespace["__builtins__"],
                  privileged=(*privileged, globals()))
    problems = []
    for module_name, harden in _HARDENING.items():
        try:
            harden()
        except (AttributeError, LookupError, TypeError) as exc:
            ALLOWED_MODULES.discard(module_name)  # fail closed
            problems.append(f"import-guard: {module_name} cannot be hardened on this Python ({exc}); "
                            f"it is not importable by agent code")
    sys.addaudithook(_audit)
    return problems
