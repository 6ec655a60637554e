"""Interop: the npm "soap" package (node-soap) builds a client from the served
?wsdl and calls GetServiceInfo (tests/interop/node/call_service_info.js).

Needs ``node`` (>= 18) and ``npm ci`` run in tests/interop/node (.ci/run does it).
"""
import base64
import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "call_service_info.js"


@pytest.fixture(scope="module")
def node():
    exe = shutil.which("node")
    if exe is None:
        pytest.skip("node is not installed (the node-soap interop test needs Node.js >= 18)")
    if not (NODE_DIR / "node_modules" / "soap").is_dir():
        pytest.skip(f"node-soap is not installed: run `npm ci` in {NODE_DIR} (.ci/run does)")
    return exe


def test_node_soap_calls_get_service_info(node, shared_server):
    run = subprocess.run([node, str(SCRIPT), shared_server.soap_url], cwd=NODE_DIR,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"node failed ({run.returncode}):\n{run.stderr}\n{run.stdout}"
    info = json.loads(run.stdout)

    assert info["services"] == ["DMWSIService"]
    assert "1.0" in info["interfaceVersions"]
    assert "GetServiceInfo" in info["operations"]
    assert all(isinstance(op, str) for op in info["operations"])
    roots = {mo["rootUri"] for mo in info["managementObjects"]}
    assert "./DevInfo" in roots
    # base64Binary and dateTime went through node-soap's own decoding.
    if info["serverCertificate"] is not None:
        assert base64.b64decode(info["serverCertificate"], validate=True)[:1] == b"\x30"  # DER SEQUENCE
    assert datetime.fromisoformat(info["serverTime"].replace("Z", "+00:00")).year >= 2024
