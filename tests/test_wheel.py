"""The program runs from a built wheel, not only from the checkout.

Builds the wheel from a copy of the project files, installs it into a fresh
venv outside the checkout, runs ``dmwsi serve`` from an empty directory and
fetches the WSDL. The venv sees the already installed dependencies through a
.pth file (no download); the .pth files of those site-packages, among them
the editable install of this checkout, are not run, so only the wheel can
provide dmwsi.
"""
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from lxml import etree

from dmwsi.config import PROJECT_ROOT

PROJECT_FILES = ["setup.py", "setup.cfg", "pyproject.toml", "README.rst", "dmwsi", "conf", "wsdl", "xsd"]
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"


def run(*argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in PROJECT_FILES:
        src = PROJECT_ROOT / name
        if src.is_dir():
            # symlinks=True keeps dmwsi/conf etc. links, as in a clone
            shutil.copytree(src, source / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, source / name)
    dist = base / "dist"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
        "-w", str(dist), str(source))
    (wheel,) = dist.glob("dmwsi-*.whl")
    venv = base / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    purelib = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip())
    installed = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    (purelib / "deps.pth").write_text("\n".join(installed) + "\n")
    run(str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel))
    return python


def test_the_wheel_carries_the_contract_and_the_defaults(venv_python, tmp_path):
    where = run(str(venv_python), "-c", "import dmwsi.resources as r; print(r.CONF_DIR); print(r.WSDL_DIR)",
                cwd=tmp_path).stdout.split()
    conf, wsdl = (Path(p) for p in where)
    assert PROJECT_ROOT not in conf.parents and not conf.is_symlink()   # real files inside the venv
    assert sorted(p.name for p in conf.iterdir()) == sorted(p.name for p in (PROJECT_ROOT / "conf").glob("*.toml"))
    assert (wsdl / "dmwsi-1.0.wsdl").read_bytes() == (PROJECT_ROOT / "wsdl" / "dmwsi-1.0.wsdl").read_bytes()
    assert (wsdl.parent / "xsd" / "dmwsi-1.0.xsd").is_file()   # where ../xsd/ from the WSDL points


def test_dmwsi_serve_from_the_wheel_serves_the_wsdl_and_stops_on_sigterm(venv_python, tmp_path):
    workdir = tmp_path / "empty"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMWSI_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    server = subprocess.Popen(
        [str(venv_python.parent / "dmwsi"), "serve", "--http-port", "0", "--https-port", "0",
         "--data-dir", str(tmp_path / "data")],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = []
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            output.append(line)
            found = re.search(r"http SOAP endpoint (http://\S+)", line)
            url = found and found.group(1)
        assert url, "server did not start:\n" + "".join(output)
        with urllib.request.urlopen(url + "?wsdl", timeout=10) as answer:
            served = etree.fromstring(answer.read())
        authored = etree.parse(str(PROJECT_ROOT / "wsdl" / "dmwsi-1.0.wsdl"))
        operations = ".//{%s}portType/{%s}operation" % (WSDL_NS, WSDL_NS)
        names = {op.get("name") for op in authored.iterfind(operations)}
        assert names and {op.get("name") for op in served.iterfind(operations)} == names
        server.send_signal(signal.SIGTERM)
        rest, _ = server.communicate(timeout=20)
        output.append(rest)
        assert server.returncode == 0, "".join(output)
        assert "Traceback" not in "".join(output)
        assert not any(workdir.iterdir())   # nothing written where it was started
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
