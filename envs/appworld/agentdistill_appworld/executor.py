"""A sandboxed, persistent Python REPL for agents that write code calling app APIs.

The environment keeps the app state (SQLite) in the *host* process. Agent code runs in a separate child
process that never sees the database, the host's objects or its environment variables. Inside the child,
``apis.<app>.<api>(**kwargs)`` is a proxy: each call is sent over a pipe to the host, which runs it through
its handler and sends back a JSON value or an error. One :class:`Sandbox` is one child with one persistent
namespace; variables, functions and imports survive between :meth:`Sandbox.execute` calls.

Protection layers (``Sandbox.protections`` says which are active for the current child):

``import-guard``
    ``guard.py`` (read its docstring for every rule and why). The agent's source is checked before it runs:
    no dunder attributes beyond protocol methods, no private (``_x``) or frame/code attributes
    (``gi_frame``, ``f_back``...), no ``__builtins__``/``__import__``. ``import`` admits an allow-list of
    pure-computation modules, handed out as read-only views; ``open``, ``exec``, ``eval``, ``compile``,
    ``breakpoint``, ``input`` and ``time.sleep`` raise a clear error; ``getattr``/``setattr``/``vars``/
    ``globals``, ``str.format``, ``operator.attrgetter`` and the library code that evaluates strings or
    picks a module by name (``typing``, ``dataclasses``, ``enum``, ``contextlib``, ``functools``) apply the
    same rules. An audit hook is the backstop: frames, files, processes, sockets, ctypes and changes to
    library classes are refused even if a route were missed.
    *Protects against*: escapes through the object graph, frames or library code (it holds with every other
    layer off: ``test_appworld_containment.py``); gives the agent a readable refusal naming what is not
    allowed. *Does not protect against*: bugs in CPython or in the allowed modules' C code, CPU or memory use.
``rlimits``
    The child lowers its own hard limits: RLIMIT_AS (memory), RLIMIT_CPU (CPU seconds over its life),
    RLIMIT_NOFILE (few descriptors), RLIMIT_FSIZE 0 (no file may grow), RLIMIT_CORE 0, RLIMIT_NPROC 0.
    *Protects against*: memory bombs, CPU burning, filling the disk. *Does not*: RLIMIT_NPROC is not
    enforced for root, so forks are stopped by seccomp, not by this layer; nothing here stops reading files.
``netns``
    The child is started as ``unshare --user --map-root-user --net --ipc python ...``: a fresh network
    namespace with only a loopback interface that is down, and a private System V IPC namespace.
    Verified by comparing ``/proc/self/ns/net`` of host and child.
    *Protects against*: any network access (including the host's 127.0.0.1), even with seccomp off.
    *Does not*: hide the file system or other processes.
``seccomp``
    Right before serving agent code (after every allowed module is pre-imported), the child installs a
    seccomp-BPF filter through libseccomp (``libseccomp.so.2`` via ctypes; no extra Python package). It is
    *default-allow with an explicit deny list* (``_DENIED_SYSCALLS``), each denied call failing with EPERM:
    opening or creating any file, changing the file system, sockets and all socket I/O, fork/vfork/
    clone/clone3/exec, signals to any other process, ptrace and cross-process memory access, namespaces,
    mounts, setuid-family and capabilities, prctl/seccomp, raising resource limits, io_uring, bpf, kernel
    modules and other system administration calls (``_SELF_ONLY_SYSCALLS``: signals are allowed only to the
    child's own pid; ``prlimit64`` only to read limits). System calls of a foreign ABI (x32, i386) kill the
    child (libseccomp's bad-architecture action). The filter sets no_new_privs. The pipes to the host keep
    working (read/write), and since clone is denied the child cannot start threads (it needs none).
    *Protects against*: reading or writing files, spawning processes, the network, attacking the host or
    other sandboxes, even after a Python-level escape. *Does not*: stop metadata calls (``stat``,
    ``readlink``, ``access``) on paths, which are allowed, nor CPU/memory use (rlimits and the host's
    timeout do that), nor kernel bugs reachable through the allowed calls.

If ``unshare`` or libseccomp is unavailable (or a layer is switched off in :class:`ExecutorLimits`), the
sandbox still works with the remaining layers, logs a warning once, and leaves the layer out of
``protections``.

The host enforces the per-execute wall-clock timeout (time spent inside the host handler is not charged)
by killing and restarting the child, and enforces the API-call cap itself, so a child that forges
protocol messages gains nothing. Everything the child sends is untrusted: a malformed message restarts the
child; nothing the child sends can raise in the host. Only host bugs raise in the host: a handler
exception that is not an API error, a non-JSON result, or a child that cannot start.

Child start-up: a fork-less ``subprocess.Popen`` (posix_spawn/vfork, no ``preexec_fn``) of
``[unshare ...] python -I -S -B <this file>`` with a minimal environment (``TZ=UTC0``) and cwd ``/``.
``-I`` ignores ``PYTHON*`` variables and the user site, ``-S`` skips ``site`` (faster, no ``.pth`` code),
``-B`` writes no bytecode. This file holds both sides; run as a script it is the child, which loads
``guard.py`` (next to it) by path.

Protocol: frames of a 4-byte big-endian length followed by that many bytes of UTF-8 JSON (one object),
over the child's stdin (host to child) and stdout (child to host). At start-up the child moves those pipes
to new descriptors and points fds 0, 1 and 2 at /dev/null; the agent's ``print`` output is captured in
memory, so it never mixes with the protocol. Messages::

    host -> child  {"type": "init", "limits": {...}, "now": str | null}
    child -> host  {"type": "ready", "protections": [...], "net_namespace": str | null, "problems": [...]}
    host -> child  {"type": "execute", "code": str, "hidden": bool}
    child -> host  {"type": "call", "app": str, "api": str, "kwargs": {...}}          (zero or more)
    host -> child  {"type": "result", "value": ...}
                 | {"type": "error", "kind": "api" | "limit", "message": str, "status": int | null}
    child -> host  {"type": "done", "ok": bool, "observation": str, "internal_error": str | null}
"""

from __future__ import annotations

import builtins
import ctypes
import datetime
import http
import json
import logging
import math
import os
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
import types
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

_LOG = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- shared


@dataclass(frozen=True)
class ExecutorLimits:
    """Resource limits and protection switches of one Sandbox."""

    timeout_s: float = 10.0  # wall-clock per execute()
    memory_mb: int = 512  # RLIMIT_AS of the child
    cpu_s: int = 60  # RLIMIT_CPU of the child over its whole life
    max_api_calls_per_execute: int = 1000
    max_output_chars: int = 20000  # stdout is truncated beyond this, with a note
    network_namespace: bool = True  # run the child in a fresh network namespace (unshare) where possible
    seccomp: bool = True  # install a seccomp filter in the child where libseccomp is available
    import_guard: bool = True  # check agent code and guard its builtins and modules (guard.py); tests of
    rlimits: bool = True  # the other layers turn a layer off to show that each one holds on its own


class APICallError(Exception):
    """Raised by the host handler to send an API error to the agent (``APIError: 401 Unauthorized: ...``)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class SandboxError(RuntimeError):
    """The sandbox could not start (or its preamble failed): a host-side problem, never the agent's."""


_LAYERS = ("import-guard", "rlimits", "netns", "seccomp")  # in the order Sandbox.protections lists them
_HEADER = struct.Struct(">I")
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # larger frames from the child are a protocol violation

TIMEOUT_MESSAGE = (
    "Execution failed. Timed out after {timeout_s:g} s; "
    "the Python session was restarted and its variables are lost."
)
KILLED_MESSAGE = (
    "Execution failed. The Python session ran out of memory or was killed and was restarted; "
    "its variables are lost."
)
PROTOCOL_MESSAGE = (
    "Execution failed. The Python session broke the sandbox protocol and was restarted; "
    "its variables are lost."
)
SUCCESS_MESSAGE = "Execution successful."
EXIT_MESSAGE = (
    "Execution failed. exit(), quit() and SystemExit are not allowed here; "
    "the Python session keeps running and its variables are kept."
)


def _encode_frame(message: dict) -> bytes:
    payload = json.dumps(message, allow_nan=False).encode("utf-8")
    return _HEADER.pack(len(payload)) + payload


def _not_allowed(what: str, how: str = "") -> str:
    return f"Usage of '{what}'{how} is not allowed in this environment."


# ------------------------------------------------------------------------------------------------ host


class _ChildTimeout(Exception):
    """The child did not answer before the deadline."""


class _ChildGone(Exception):
    """The child's pipe closed: it exited or was killed."""


class _ProtocolError(Exception):
    """The child sent something that is not a valid message at this point."""


class _HostChannel:
    """Host end of the framed-JSON pipes, non-blocking so a stuck or hostile child can never hang the host.

    poll() rather than select(): a busy host may hold descriptors above select's 1024 limit.
    """

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self._write_fd, self._read_fd = write_fd, read_fd
        os.set_blocking(write_fd, False)
        os.set_blocking(read_fd, False)
        self._readable, self._writable = select.poll(), select.poll()
        self._readable.register(read_fd, select.POLLIN)
        self._writable.register(write_fd, select.POLLOUT)
        self._buffer = bytearray()

    def send(self, message: dict, deadline: float) -> None:
        data = memoryview(_encode_frame(message))
        while data:
            if not self._writable.poll(_remaining_ms(deadline)):
                raise _ChildTimeout
            try:
                written = os.write(self._write_fd, data)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise _ChildGone from exc
            data = data[written:]

    def recv(self, deadline: float) -> dict:
        self._fill(_HEADER.size, deadline)
        (length,) = _HEADER.unpack_from(self._buffer)
        if length > _MAX_MESSAGE_BYTES:
            raise _ProtocolError(f"frame of {length} bytes")
        self._fill(_HEADER.size + length, deadline)
        payload = bytes(self._buffer[_HEADER.size : _HEADER.size + length])
        del self._buffer[: _HEADER.size + length]
        try:
            message = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise _ProtocolError(f"undecodable frame: {exc}") from exc
        if not isinstance(message, dict):
            raise _ProtocolError("frame is not a JSON object")
        return message

    def _fill(self, size: int, deadline: float) -> None:
        while len(self._buffer) < size:
            if not self._readable.poll(_remaining_ms(deadline)):  # a hang-up also wakes us: read gives b""
                raise _ChildTimeout
            try:
                chunk = os.read(self._read_fd, max(size - len(self._buffer), 1 << 16))
            except BlockingIOError:
                continue
            if not chunk:
                raise _ChildGone
            self._buffer += chunk


def _remaining_ms(deadline: float) -> int:
    return max(0, math.ceil((deadline - time.monotonic()) * 1000))


@lru_cache(maxsize=1)
def _unshare_prefix() -> tuple[str, ...]:
    """The ``unshare`` command prefix giving the child fresh network and IPC namespaces; () if unusable."""
    binary = shutil.which("unshare")
    if binary is None:
        return ()
    prefix = (binary, "--user", "--map-root-user", "--net", "--ipc")
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _LOG.warning("unshare probe failed (%s); sandboxes run without a network namespace", exc)
        return ()
    if probe.returncode != 0:
        _LOG.warning("unshare is not usable here (%s); sandboxes run without a network namespace",
                     probe.stderr.decode(errors="replace").strip())
        return ()
    return prefix


def _own_net_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    # Sandboxes are created by the thousand in training: say each problem once per process.
    if message not in _WARNED:
        _WARNED.add(message)
        _LOG.warning("%s", message)


def _terminate(proc: subprocess.Popen) -> None:
    """Kill a child process and release its pipes (also run by the finalizer at garbage collection / exit)."""
    if proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _LOG.error("sandbox child %d did not die after SIGKILL", proc.pid)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@dataclass
class _Child:
    proc: subprocess.Popen
    channel: _HostChannel
    finalizer: weakref.finalize
    protections: tuple[str, ...] = ()


def _api_status(exc: Exception) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def _api_error_text(exc: Exception, status: int | None) -> str:
    message = getattr(exc, "message", None)
    if not isinstance(message, str) or not message:
        message = str(exc)
    if status is None:
        return message
    try:
        return f"{status} {http.HTTPStatus(status).phrase}: {message}"
    except ValueError:  # not a standard HTTP status code
        return f"{status}: {message}"


class Sandbox:
    """A persistent Python session in a contained child process; its code reaches the host via ``apis`` only.

    ``handler(app, api, kwargs)`` runs in the host and returns a JSON-able value. Raising
    :class:`APICallError` (or any exception with an int ``status``) becomes an ``APIError`` in the agent's
    code; any other exception is a host bug and is re-raised by :meth:`execute` (the child is then stopped
    and a fresh one is started by the next call). ``now`` (ISO datetime) freezes the child's clock.
    ``preamble`` is trusted set-up code run in the namespace at every (re)start; its frames are hidden from
    tracebacks. A lock serialises calls: one Sandbox serves one agent at a time.
    """

    _START_TIMEOUT_S = 60.0  # generous: two busy cores can make interpreter start-up slow

    def __init__(
        self,
        handler: Callable[[str, str, dict], Any],
        *,
        limits: ExecutorLimits = ExecutorLimits(),
        now: str | None = None,
        preamble: str = "",
    ) -> None:
        if now is not None:
            datetime.datetime.fromisoformat(now)  # fail early, in the host, on a malformed date
        self._handler = handler
        self._limits = limits
        self._now = now
        self._preamble = preamble
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._closed = False
        self._api_calls = 0
        self._start_child()

    # -- public API

    def execute(self, code: str) -> str:
        """Run ``code`` in the persistent namespace and return the observation text."""
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, not {type(code).__name__}")
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox is closed")
            if self._child is None:  # a host bug stopped the previous child
                self._start_child()
            self._api_calls = 0
            try:
                ok, observation = self._run(code, hidden=False)
            except _ChildTimeout:
                self._restart()
                return TIMEOUT_MESSAGE.format(timeout_s=self._limits.timeout_s)
            except _ChildGone:
                self._restart()
                return KILLED_MESSAGE
            except _ProtocolError as exc:
                _LOG.warning("sandbox child broke the protocol (%s); restarting it", exc)
                self._restart()
                return PROTOCOL_MESSAGE
            except BaseException:
                # A host bug (handler error, non-JSON result) or an interrupt: the child is mid-execution
                # and out of step with us, so stop it before letting the error through.
                self._stop_child()
                raise
            return self._clean_observation(observation)

    @property
    def api_calls(self) -> int:
        """API calls passed to the handler during the last execute()."""
        return self._api_calls

    @property
    def alive(self) -> bool:
        return self._child is not None and self._child.proc.poll() is None

    @property
    def protections(self) -> tuple[str, ...]:
        """Active protection layers of the current child: some of import-guard, rlimits, netns, seccomp."""
        return self._child.protections if self._child is not None else ()

    @property
    def pid(self) -> int | None:
        """OS process id of the current child (for monitoring and tests)."""
        return self._child.proc.pid if self._child is not None else None

    def close(self) -> None:
        """Kill the child. Idempotent; the sandbox cannot be used afterwards."""
        with self._lock:
            self._closed = True
            self._stop_child()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- child life cycle

    def _start_child(self) -> None:
        command = [*self._namespace_prefix(), sys.executable, "-I", "-S", "-B", str(Path(__file__).resolve())]
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd="/",
            env={"TZ": "UTC0", "LANG": "C.UTF-8"},  # nothing of the host's environment reaches the child
            close_fds=True,
            start_new_session=True,  # own process group: no terminal signals, no group-wide kill of the host
        )
        finalizer = weakref.finalize(self, _terminate, proc)
        child = _Child(proc, _HostChannel(proc.stdin.fileno(), proc.stdout.fileno()), finalizer)
        deadline = time.monotonic() + self._START_TIMEOUT_S
        try:
            child.channel.send({"type": "init", "limits": asdict(self._limits), "now": self._now}, deadline)
            ready = child.channel.recv(deadline)
        except (_ChildTimeout, _ChildGone, _ProtocolError) as exc:
            details = self._startup_stderr(proc)
            finalizer()
            reason = type(exc).__name__
            raise SandboxError(f"the sandbox child failed to start ({reason}): {details}") from exc
        if ready.get("type") != "ready":
            finalizer()
            raise SandboxError(f"unexpected first message from the sandbox child: {ready.get('type')!r}")
        proc.stderr.close()  # the child now points fd 2 at /dev/null; nothing more will arrive
        child.protections = self._verified_protections(ready)
        self._child = child
        if self._preamble:
            self._run_preamble()

    def _namespace_prefix(self) -> tuple[str, ...]:
        if not self._limits.network_namespace:
            return ()
        prefix = _unshare_prefix()
        if not prefix:
            _warn_once("sandbox layer 'netns' is not active: unshare is unavailable or not permitted")
        return prefix

    def _verified_protections(self, ready: dict) -> tuple[str, ...]:
        reported = set(ready.get("protections", []))
        child_ns, host_ns = ready.get("net_namespace"), _own_net_namespace()
        if child_ns and host_ns and child_ns != host_ns:  # verified here rather than taken on trust
            reported.add("netns")
        layers = tuple(layer for layer in _LAYERS if layer in reported)
        for problem in ready.get("problems", []):
            _warn_once(f"sandbox child: {problem}")
        wanted = {"import-guard": self._limits.import_guard, "rlimits": self._limits.rlimits,
                  "netns": self._limits.network_namespace, "seccomp": self._limits.seccomp}
        for layer, requested in wanted.items():
            if requested and layer not in layers:
                _warn_once(f"sandbox layer {layer!r} is not active (see the problems reported above)")
        return layers

    def _run_preamble(self) -> None:
        api_calls = self._api_calls  # the preamble's calls do not count for the agent's execute()
        try:
            ok, observation = self._run(self._preamble, hidden=True)
        except (_ChildTimeout, _ChildGone, _ProtocolError) as exc:
            self._stop_child()
            raise SandboxError(f"the sandbox preamble did not complete ({type(exc).__name__})") from exc
        finally:
            self._api_calls = api_calls
        if not ok:
            self._stop_child()
            raise SandboxError(f"the sandbox preamble failed:\n{observation}")

    @staticmethod
    def _startup_stderr(proc: subprocess.Popen) -> str:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read(64 * 1024).decode(errors="replace").strip()
        return stderr or f"exit status {proc.returncode}"

    def _stop_child(self) -> None:
        if self._child is not None:
            self._child.finalizer()
            self._child = None

    def _restart(self) -> None:
        self._stop_child()
        self._start_child()

    # -- one execution

    def _run(self, code: str, *, hidden: bool) -> tuple[bool, str]:
        """Send ``code`` to the child and serve its API calls until it reports the result."""
        channel = self._child.channel
        deadline = time.monotonic() + self._limits.timeout_s
        channel.send({"type": "execute", "code": code, "hidden": hidden}, deadline)
        while True:
            message = channel.recv(deadline)
            kind = message.get("type")
            if kind == "done":
                return self._finish(message)
            if kind != "call":
                raise _ProtocolError(f"unexpected message type {kind!r}")
            started = time.monotonic()
            reply = self._answer_call(message)
            deadline += time.monotonic() - started  # the handler's time is not charged to the agent
            channel.send(reply, deadline)

    def _finish(self, message: dict) -> tuple[bool, str]:
        observation, ok = message.get("observation"), message.get("ok")
        if not isinstance(observation, str) or not isinstance(ok, bool):
            raise _ProtocolError("malformed 'done' message")
        if message.get("internal_error"):
            _LOG.error("internal error in the sandbox child:\n%s", message["internal_error"])
        return ok, observation

    def _answer_call(self, message: dict) -> dict:
        app, api, kwargs = message.get("app"), message.get("api"), message.get("kwargs")
        if not (isinstance(app, str) and isinstance(api, str) and isinstance(kwargs, dict)):
            raise _ProtocolError("malformed 'call' message")
        limit = self._limits.max_api_calls_per_execute
        if self._api_calls >= limit:  # enforced here, so a forged message cannot bypass it
            return {"type": "error", "kind": "limit", "status": None,
                    "message": f"Too many API calls: at most {limit} API calls are allowed per execution."}
        self._api_calls += 1
        try:
            value = self._handler(app, api, kwargs)
        except Exception as exc:
            status = _api_status(exc)
            if not isinstance(exc, APICallError) and status is None:
                raise  # a host bug: never disguise it as an API error
            return {"type": "error", "kind": "api", "status": status, "message": _api_error_text(exc, status)}
        reply = {"type": "result", "value": value}
        try:
            _encode_frame(reply)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the API handler returned a non-JSON value for apis.{app}.{api}: {exc}") from exc
        return reply

    def _clean_observation(self, observation: str) -> str:
        # Lone surrogates (print('\ud800')) would break UTF-8 consumers downstream: show them escaped.
        observation = observation.encode("utf-8", "backslashreplace").decode("utf-8")
        # The child already truncates; this bounds what a misbehaving child could push into the host.
        cap = 2 * self._limits.max_output_chars + 4000
        if len(observation) <= cap:
            return observation
        dropped = len(observation) - cap
        return observation[:cap] + f"\n[Observation truncated: {dropped} characters were dropped.]"


# ----------------------------------------------------------------------------------------------- child
# Everything below runs in the child process only.

# Denied with EPERM (see the module docstring). Names unknown to this kernel/architecture are skipped.
_DENIED_SYSCALLS = (
    # files: opening or creating anything, and every change to the file system
    "open", "openat", "openat2", "creat", "open_by_handle_at", "name_to_handle_at",
    "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir",
    "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat",
    "symlink", "symlinkat", "link", "linkat", "truncate", "ftruncate", "fallocate", "mknod", "mknodat",
    "utime", "utimes", "utimensat", "futimesat",
    "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    "memfd_create", "memfd_secret",
    # network
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendto", "sendmsg",
    "sendmmsg", "recvfrom", "recvmsg", "recvmmsg", "setsockopt", "getsockopt", "shutdown",
    # processes
    "fork", "vfork", "clone", "clone3", "execve", "execveat",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "pidfd_open", "pidfd_send_signal", "pidfd_getfd",
    "setpriority", "sched_setscheduler", "sched_setparam", "sched_setattr", "sched_setaffinity",
    # privileges, namespaces, mounts
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid",
    "setgroups", "capset", "prctl", "seccomp", "setrlimit", "unshare", "setns",
    "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
    "open_tree", "mount_setattr",
    # kernel interfaces and system administration
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "perf_event_open", "userfaultfd",
    "keyctl", "add_key", "request_key", "init_module", "finit_module", "delete_module",
    "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
    "syslog", "iopl", "ioperm", "vhangup", "sethostname", "setdomainname",
    "settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "lookup_dcookie", "fanotify_init",
)
# Allowed only when their first argument is the child's own pid (signals to itself).
_SELF_ONLY_SYSCALLS = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")
# Since Linux 5.1 new system calls share one number on every architecture; used if libseccomp is too old.
_UNIFIED_SYSCALL_NUMBERS = {
    "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "pidfd_open": 434, "clone3": 435, "openat2": 437, "pidfd_getfd": 438, "mount_setattr": 442,
    "quotactl_fd": 443, "memfd_secret": 447,
}
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO_EPERM = 0x00050000 | 1  # SCMP_ACT_ERRNO(EPERM)
_SCMP_CMP_NE = 1
_NR_SCMP_ERROR = -1


class _ScmpArgCmp(ctypes.Structure):
    """libseccomp's ``struct scmp_arg_cmp``."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _ChildChannel:
    """Child end of the protocol: blocking reads and writes on the descriptors the host gave it."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd, self._write_fd = read_fd, write_fd

    @classmethod
    def from_standard_streams(cls) -> _ChildChannel:
        """Move the protocol off fds 0/1 and point 0, 1 (later 2) at /dev/null: stray writes are harmless."""
        channel = cls(os.dup(0), os.dup(1))
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        return channel

    def send(self, message: dict) -> None:
        data = memoryview(_encode_frame(message))
        while data:
            data = data[os.write(self._write_fd, data):]

    def recv(self) -> dict:
        (length,) = _HEADER.unpack(self._read_exact(_HEADER.size))
        return json.loads(self._read_exact(length))

    def _read_exact(self, size: int) -> bytes:
        chunks, missing = [], size
        while missing:
            chunk = os.read(self._read_fd, missing)
            if not chunk:
                raise EOFError("the host closed the pipe")
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)


# -- exceptions the agent can see (their __module__ is "builtins" so tracebacks show bare names)


class APIError(Exception):
    """An API call was answered with an error by the host."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class APICallLimitError(RuntimeError):
    """Too many API calls in one execution."""


for _agent_exception in (APIError, APICallLimitError):
    _agent_exception.__module__ = "builtins"


# -- the `apis` proxy


def _make_apis(call: Callable[[str, str, dict], Any]) -> object:
    """Build the ``apis`` object; it holds nothing but a closure over the pipe protocol."""

    class ApiFunction:
        __slots__ = ("app", "api")

        def __init__(self, app: str, api: str) -> None:
            self.app, self.api = app, api

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            if args:
                raise TypeError(f"apis.{self.app}.{self.api} takes keyword arguments only, e.g. "
                                f"apis.{self.app}.{self.api}(name=value)")
            return call(self.app, self.api, kwargs)

        def __repr__(self) -> str:
            return f"<API apis.{self.app}.{self.api}>"

    class App:
        __slots__ = ("app",)

        def __init__(self, app: str) -> None:
            self.app = app

        def __getattr__(self, api: str) -> ApiFunction:
            if api.startswith("_"):
                raise AttributeError(api)
            return ApiFunction(self.app, api)

        def __repr__(self) -> str:
            return f"<app apis.{self.app}>"

    class Apis:
        __slots__ = ()

        def __getattr__(self, app: str) -> App:
            if app.startswith("_"):
                raise AttributeError(app)
            return App(app)

        def __repr__(self) -> str:
            return "<apis: call apis.<app>.<api>(**kwargs)>"

    return Apis()


# -- the agent's builtins (the import guard's are in guard.py)


def _agent_print(*args: Any, **kwargs: Any) -> None:
    """print(), except that a single list or dict argument is shown as JSON."""
    if len(args) == 1 and isinstance(args[0], (list, dict)):
        try:
            text = json.dumps(args[0])
            if len(text) > 80:
                text = json.dumps(args[0], indent=2)
            args = (text,)
        except (TypeError, ValueError, RecursionError):
            pass  # not JSON-able: fall back to the usual repr
    builtins.print(*args, **kwargs)


def _agent_input(*args: Any) -> str:
    raise RuntimeError("input() is not supported: there is no interactive user in this environment.")


def _agent_exit(*args: Any) -> None:
    raise SystemExit(*args)


# -- the frozen clock


class _AcceptsRealInstances(type):
    # isinstance(x, datetime.date) must stay true for dates made by library code from the real classes.
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls._real)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls._real)


def _freeze_clock(now_iso: str) -> None:
    """Make datetime.now()/today()/utcnow(), date.today() and time.time() (and friends) return ``now``."""
    real_date, real_datetime = datetime.date, datetime.datetime
    frozen = real_datetime.fromisoformat(now_iso)
    if frozen.tzinfo is not None:  # the child's local zone is UTC (TZ=UTC0)
        frozen = frozen.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    instant = frozen.replace(tzinfo=datetime.timezone.utc)

    class FrozenDate(real_date, metaclass=_AcceptsRealInstances):
        _real = real_date

        @classmethod
        def today(cls) -> Any:
            return cls(frozen.year, frozen.month, frozen.day)

    class FrozenDateTime(real_datetime, metaclass=_AcceptsRealInstances):
        _real = real_datetime

        @classmethod
        def _of(cls, value: datetime.datetime) -> Any:
            return cls(value.year, value.month, value.day, value.hour, value.minute, value.second,
                       value.microsecond, value.tzinfo, fold=value.fold)

        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> Any:
            return cls._of(frozen if tz is None else instant.astimezone(tz))

        @classmethod
        def today(cls) -> Any:
            return cls._of(frozen)

        @classmethod
        def utcnow(cls) -> Any:
            return cls._of(frozen)

    # The C repr uses the type's __name__; this keeps reprs identical to the real classes'.
    for fake, name in ((FrozenDate, "date"), (FrozenDateTime, "datetime")):
        fake.__name__, fake.__qualname__, fake.__module__ = f"datetime.{name}", name, "datetime"
    datetime.date, datetime.datetime = FrozenDate, FrozenDateTime
    _freeze_time_module(instant)


def _freeze_time_module(instant: datetime.datetime) -> None:
    stamp = instant.timestamp()
    stamp_ns = int(instant.replace(microsecond=0).timestamp()) * 10**9 + instant.microsecond * 1000
    real_localtime, real_gmtime = time.localtime, time.gmtime
    real_ctime, real_asctime, real_strftime = time.ctime, time.asctime, time.strftime

    def frozen_time() -> float:
        return stamp

    def frozen_time_ns() -> int:
        return stamp_ns

    def localtime(secs: float | None = None) -> time.struct_time:
        return real_localtime(stamp if secs is None else secs)

    def gmtime(secs: float | None = None) -> time.struct_time:
        return real_gmtime(stamp if secs is None else secs)

    def ctime(secs: float | None = None) -> str:
        return real_ctime(stamp if secs is None else secs)

    def asctime(t: Any = None) -> str:
        return real_asctime(real_localtime(stamp) if t is None else t)

    def strftime(format: str, t: Any = None) -> str:
        return real_strftime(format, real_localtime(stamp) if t is None else t)

    time.time, time.time_ns, time.localtime, time.gmtime = frozen_time, frozen_time_ns, localtime, gmtime
    time.ctime, time.asctime, time.strftime = ctime, asctime, strftime


# -- OS-level containment


def _apply_rlimits(limits: dict) -> list[str]:
    """Lower the child's limits (hard limits too, so they cannot be raised again); returns the problems."""
    memory = int(limits["memory_mb"]) * 1024 * 1024
    cpu = max(1, int(limits["cpu_s"]))
    settings = (
        ("RLIMIT_AS", resource.RLIMIT_AS, memory, memory),
        ("RLIMIT_CPU", resource.RLIMIT_CPU, cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL 1 s later
        ("RLIMIT_NOFILE", resource.RLIMIT_NOFILE, 16, 16),
        ("RLIMIT_FSIZE", resource.RLIMIT_FSIZE, 0, 0),
        ("RLIMIT_CORE", resource.RLIMIT_CORE, 0, 0),
        ("RLIMIT_NPROC", resource.RLIMIT_NPROC, 0, 0),  # not enforced for root; seccomp stops forks there
    )
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE then fails with EFBIG
    problems = []
    for label, which, soft, hard in settings:
        try:
            _lower_limit(which, soft, hard)
        except (ValueError, OSError) as exc:
            problems.append(f"rlimits: cannot set {label}: {exc}")
    return problems


def _lower_limit(which: int, soft: int, hard: int) -> None:
    # Never above an inherited hard limit: raising it would fail (and a tighter inherited limit is fine).
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


def _install_seccomp(own_pid: int) -> str | None:
    """Load the deny-list filter (default allow, EPERM on denied calls); returns a problem or None."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as exc:
        return f"seccomp: libseccomp is not available ({exc})"
    lib.seccomp_init.argtypes, lib.seccomp_init.restype = [ctypes.c_uint32], ctypes.c_void_p
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ScmpArgCmp)]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_load.argtypes, lib.seccomp_load.restype = [ctypes.c_void_p], ctypes.c_int
    lib.seccomp_release.argtypes, lib.seccomp_release.restype = [ctypes.c_void_p], None
    context = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not context:
        return "seccomp: seccomp_init failed"
    try:
        for name in _DENIED_SYSCALLS:
            _deny(lib, context, name)
        for name in _SELF_ONLY_SYSCALLS:
            _deny(lib, context, name, _ScmpArgCmp(0, _SCMP_CMP_NE, own_pid, 0))
        _deny(lib, context, "prlimit64", _ScmpArgCmp(2, _SCMP_CMP_NE, 0, 0))  # reading limits stays allowed
        status = lib.seccomp_load(context)  # also sets no_new_privs
        if status < 0:
            return f"seccomp: seccomp_load failed: {os.strerror(-status)}"
    except OSError as exc:
        return f"seccomp: {exc}"
    finally:
        lib.seccomp_release(context)
    return None


def _deny(lib: ctypes.CDLL, context: int, name: str, *conditions: _ScmpArgCmp) -> None:
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number == _NR_SCMP_ERROR:
        number = _UNIFIED_SYSCALL_NUMBERS.get(name, _NR_SCMP_ERROR)
    if number == _NR_SCMP_ERROR:
        return  # this system call does not exist here, so there is nothing to deny
    array = (_ScmpArgCmp * len(conditions))(*conditions) if conditions else None
    status = lib.seccomp_rule_add_array(context, _SCMP_ACT_ERRNO_EPERM, number, len(conditions), array)
    if status < 0:
        raise OSError(-status, f"cannot add a rule for {name}: {os.strerror(-status)}")


# -- running agent code


class _CappedWriter:
    """The agent's sys.stdout/sys.stderr: keeps the first ``cap`` characters and counts the rest."""

    def __init__(self, cap: int) -> None:
        self._cap, self._parts, self._kept, self.dropped = cap, [], 0, 0

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self._cap - self._kept
        if room > 0:
            self._parts.append(text[:room])
            self._kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        text = "".join(self._parts)
        if self.dropped:
            text += ("" if text.endswith("\n") else "\n")
            text += f"[Output truncated: {self.dropped} more characters were dropped.]\n"
        return text


def _shorten_middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters dropped ...]\n{text[-half:]}"


class _AgentSession:
    """The persistent namespace and the execution of code cells in it."""

    def __init__(self, channel: _ChildChannel, limits: dict, guard: types.ModuleType) -> None:
        self._channel = channel
        self._limits = limits
        self._guard = guard
        self._guarded = bool(limits["import_guard"])
        self._sources: dict[str, list[str]] = {}  # cell file name -> its source lines
        self._cells = 0
        # One-shot headroom, freed so that a MemoryError can still be formatted and reported.
        self._memory_reserve: bytearray | None = bytearray(4 * 1024 * 1024)
        module = types.ModuleType("__main__")
        extra = dict(print=_agent_print, input=_agent_input, exit=_agent_exit, quit=_agent_exit,
                     APIError=APIError, APICallLimitError=APICallLimitError)
        agent_builtins = guard.agent_builtins(extra) if self._guarded else {**vars(builtins), **extra}
        module.__dict__.update(__builtins__=agent_builtins, apis=_make_apis(self._call_api))
        # The agent's module becomes __main__ (so dataclasses, typing and enum find its classes); this file's
        # own module, which was __main__, is kept referenced here.
        self._executor_module = sys.modules["__main__"]
        sys.modules["__main__"] = module
        self._namespace = module.__dict__

    @property
    def namespace(self) -> dict[str, Any]:
        return self._namespace

    def run(self, code: str, *, hidden: bool) -> tuple[bool, str]:
        """Execute one cell; returns (succeeded, observation)."""
        self._cells += 1
        filename = "<preamble>" if hidden else f"<agent-{self._cells}>"
        try:
            compiled = self._compile(code, filename, hidden=hidden)
        except SyntaxError as exc:
            return False, self._syntax_error(exc, code)
        except ValueError as exc:  # null bytes in the source
            first_line = code.splitlines()[0] if code else ""
            return False, f"Execution failed. Syntax error in line 1: {first_line.strip()}\nMessage: {exc}"
        except self._guard.GuardViolation as exc:  # refused before any of it ran
            return False, self._refusal(exc, code)
        except (RecursionError, MemoryError):  # the parser's own limit on nesting
            return False, "Execution failed. The code is nested too deeply to be compiled."
        if not hidden:
            self._sources[filename] = code.splitlines()
        output = _CappedWriter(int(self._limits["max_output_chars"]))
        failure = self._exec(compiled, output)
        stdout = output.getvalue()
        if failure is None:
            return True, stdout or SUCCESS_MESSAGE
        if stdout and not stdout.endswith("\n"):
            stdout += "\n"
        return False, stdout + _shorten_middle(failure, int(self._limits["max_output_chars"]))

    def _compile(self, code: str, filename: str, *, hidden: bool) -> types.CodeType:
        if not self._guarded:
            return compile(code, filename, "exec", dont_inherit=True)
        if hidden:  # the host's preamble is trusted
            return self._guard.compile_trusted_code(code, filename)
        return self._guard.compile_agent_code(code, filename)

    def _exec(self, compiled: types.CodeType, output: _CappedWriter) -> str | None:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = output
        try:
            exec(compiled, self._namespace)
        except SystemExit:
            return EXIT_MESSAGE
        except BaseException as exc:  # everything the agent's code raises is its observation
            if isinstance(exc, MemoryError):
                self._memory_reserve = None  # give the formatting below room to breathe
            return self._format_exception(exc)
        finally:
            sys.stdout, sys.stderr = saved
        return None

    def _syntax_error(self, exc: SyntaxError, code: str) -> str:
        lineno = exc.lineno or 1
        line = exc.text
        if line is None:
            lines = code.splitlines()
            line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
        return f"Execution failed. Syntax error in line {lineno}: {line.strip()}\nMessage: {exc.msg}"

    def _format_exception(self, exc: BaseException) -> str:
        """Traceback with the agent's frames only (shown as "<agent>"), then the exception line."""
        frames = []
        for filename, lineno, name in self._guard.traceback_entries(exc.__traceback__):
            if filename in self._sources:
                lines = self._sources[filename]
                line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
                frames.append(traceback.FrameSummary("<agent>", lineno, name, lookup_line=False, line=line))
        stack = "".join(traceback.StackSummary.from_list(frames).format())
        last = "".join(traceback.format_exception_only(type(exc), exc))
        return f"Execution failed. Traceback:\n{stack}{last}".rstrip("\n")

    @staticmethod
    def _refusal(exc: Exception, code: str) -> str:
        """The import guard refused the source: shown like the PermissionError it would have raised there."""
        lines = code.splitlines()
        line = lines[exc.lineno - 1] if 0 < exc.lineno <= len(lines) else ""
        frame = traceback.FrameSummary("<agent>", exc.lineno, "<module>", lookup_line=False, line=line)
        stack = "".join(traceback.StackSummary.from_list([frame]).format())
        return f"Execution failed. Traceback:\n{stack}PermissionError: {exc.message}"

    def _call_api(self, app: str, api: str, kwargs: dict) -> Any:
        try:
            json.dumps(kwargs, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"arguments of apis.{app}.{api} must be JSON-serializable: {exc}") from None
        self._channel.send({"type": "call", "app": app, "api": api, "kwargs": kwargs})
        reply = self._channel.recv()
        if reply.get("type") == "result":
            return reply.get("value")
        if reply.get("kind") == "limit":
            raise APICallLimitError(reply.get("message"))
        raise APIError(reply.get("message"), reply.get("status"))


def _load_guard() -> types.ModuleType:
    """guard.py, loaded by path: the child runs with -I -S, so the package is not on its sys.path."""
    import importlib.util  # noqa: PLC0415 - only the child needs it

    path = Path(__file__).resolve().with_name("guard.py")
    spec = importlib.util.spec_from_file_location("agentdistill_appworld_guard", path)
    guard = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = guard  # its classes' __module__ must resolve (dataclasses, typing, pickling)
    spec.loader.exec_module(guard)
    return guard


def _preload_modules(guard: types.ModuleType) -> list[str]:
    missing = []
    for name in guard.PRELOADED_MODULES:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    return missing


def _child_main() -> None:
    channel = _ChildChannel.from_standard_streams()
    init = channel.recv()
    limits = init["limits"]
    guard = _load_guard()
    problems = [f"module {name} could not be pre-imported" for name in _preload_modules(guard)]
    if init.get("now"):
        _freeze_clock(init["now"])
    time.sleep = guard.refuse("time.sleep")
    protections = []
    if limits["rlimits"]:
        rlimit_problems = _apply_rlimits(limits)
        if not rlimit_problems:
            protections.append("rlimits")
        problems += rlimit_problems
    session = _AgentSession(channel, limits, guard)
    net_namespace = _own_net_namespace()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # start-up errors went to the host; from now on stray writes vanish
    os.close(devnull)
    if limits["seccomp"]:
        seccomp_problem = _install_seccomp(os.getpid())
        if seccomp_problem is None:
            protections.append("seccomp")
        else:
            problems.append(seccomp_problem)
    if limits["import_guard"]:  # last: from here on the audit hook refuses files, processes, ctypes...
        problems += guard.install(session.namespace, privileged=(globals(),))
        protections.insert(0, "import-guard")
    channel.send({"type": "ready", "protections": protections, "net_namespace": net_namespace,
                  "problems": problems})
    _serve(channel, session)


def _serve(channel: _ChildChannel, session: _AgentSession) -> None:
    while True:
        try:
            message = channel.recv()
        except EOFError:
            return  # the host is gone or closed us
        if message.get("type") != "execute":
            return
        try:
            ok, observation = session.run(message["code"], hidden=bool(message.get("hidden")))
            internal_error = None
        except Exception:  # a bug in this file, not the agent's: report it to the host, which logs it
            ok, observation = False, "Execution failed. Internal error in the sandbox."
            internal_error = traceback.format_exc()
        channel.send({"type": "done", "ok": ok, "observation": observation, "internal_error": internal_error})


if __name__ == "__main__":
    _child_main()
