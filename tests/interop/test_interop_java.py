"""Interop: JAX-WS (the RI's wsimport, Debian package ``jaxws``) generates Java
stubs from the served ?wsdl; tests/interop/java/ServiceInfoClient.java, compiled
against them, calls GetServiceInfo and a not-yet-built operation.

Three JVMs, each told to skip the optimizing JIT (-XX:TieredStopAtLevel=1, about
twice as fast for such short runs): wsimport (-Xnocompile: sources only), one
javac for stubs + client, one java run.

The only customization is java/bindings.xml, which turns JAX-WS wrapper style
off: with it on, GetSubscriberInfo's request and response both unwrap to a
parameter named ``subscriber`` and wsimport refuses ("duplicate parameter
name"). That is a JAX-WS mapping limit, not a WS-I Basic Profile problem.
"""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "java"
CLIENT = HERE / "ServiceInfoClient.java"
BINDINGS = HERE / "bindings.xml"
PACKAGE = "org.dmwsi.client"
FAST_JVM = "-XX:TieredStopAtLevel=1"

# The JAX-WS 2.3 runtime for Java 11+ (no longer in the JDK). Debian's
# jaxws-rt.jar names most of its dependencies in its manifest Class-Path; these
# are the ones it leaves out.
JAR_DIRS = [Path("/usr/share/java"), Path("/usr/share/jaxws/lib")]
RUNTIME_JARS = ["jaxws-rt.jar", "jaxb-core.jar", "javax.activation.jar"]


def _find_jar(name):
    for d in [Path(p) for p in os.environ.get("DMWSI_JAXWS_JARS", "").split(os.pathsep) if p] + JAR_DIRS:
        if (d / name).is_file():
            return str(d / name)
    return None


@pytest.fixture(scope="module")
def java_tools():
    tools = {name: shutil.which(name) for name in ("wsimport", "javac", "java")}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        pytest.skip(f"JAX-WS interop needs {', '.join(missing)} "
                    "(Debian: apt-get install jaxws default-jdk-headless)")
    jars = {name: _find_jar(name) for name in RUNTIME_JARS}
    absent = [name for name, path in jars.items() if path is None]
    if absent:
        pytest.skip(f"JAX-WS runtime jar(s) {', '.join(absent)} not found in "
                    f"{', '.join(map(str, JAR_DIRS))} (Debian package jaxws)")
    tools["classpath"] = os.pathsep.join(jars.values())
    return tools


def _run(step, argv, env=None, timeout=180):
    started = time.monotonic()
    run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    elapsed = time.monotonic() - started
    print(f"{step}: {elapsed:.1f}s")
    assert run.returncode == 0, (f"{step} failed ({run.returncode}): {' '.join(argv)}\n"
                                 f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}")
    return run


def test_jaxws_client_calls_get_service_info(java_tools, shared_server, tmp_path):
    url = shared_server.soap_url
    generated, classes = tmp_path / "generated", tmp_path / "classes"
    generated.mkdir()
    classes.mkdir()

    _run("wsimport", [java_tools["wsimport"], "-quiet", "-Xnocompile", "-keep",
                      "-p", PACKAGE, "-b", str(BINDINGS),
                      "-s", str(generated), "-d", str(generated), url + "?wsdl"],
         env={"WSIMPORT_OPTS": FAST_JVM})
    stubs = sorted(generated.rglob("*.java"))
    stub_names = {p.stem for p in stubs}
    assert {"DMWSI", "DMWSIService", "ServiceInfo", "GetServiceInfoResponse"} <= stub_names

    _run("javac", [java_tools["javac"], f"-J{FAST_JVM}", "-nowarn", "-encoding", "UTF-8",
                   "-cp", java_tools["classpath"], "-d", str(classes),
                   *map(str, stubs), str(CLIENT)])

    run = _run("java", [java_tools["java"], FAST_JVM,
                        # name SAAJ's factory so the RI does not warn about its lookup
                        "-Djavax.xml.soap.SAAJMetaFactory=com.sun.xml.messaging.saaj.soap.SAAJMetaFactoryImpl",
                        "-cp", os.pathsep.join([str(classes), java_tools["classpath"]]),
                        "ServiceInfoClient", url], timeout=120)
    out = dict(line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)

    assert "1.0" in out["interfaceVersions"].split(",")
    operations = out["operations"].split(",")
    assert "GetServiceInfo" in operations
    assert int(out["operationCount"]) == len(operations)
    assert "./DevInfo" in out["managementObjectRoots"].split(",")
    assert int(out["serverTimeYear"]) >= 2024
    # The fault of an operation not built yet reaches Java with its detail code.
    assert out["fault.faultcode"] == "Client"
    assert out["fault.code"] == "UnknownDevice"
