"""Interop: suds (suds-community), a SOAP stack independent of zeep and spyne,
builds its client from the served ?wsdl and calls the service."""
import pytest

suds_client = pytest.importorskip("suds.client", reason="suds-community is not installed")
from suds import WebFault  # noqa: E402


@pytest.fixture
def suds(shared_server):
    # cache=None: never reuse a WSDL cached from another server/port.
    return suds_client.Client(shared_server.soap_url + "?wsdl", cache=None, timeout=30)


def test_suds_reads_the_served_wsdl(suds, shared_server):
    service = suds.wsdl.services[0]
    assert service.name == "DMWSIService"
    port = service.ports[0]
    assert port.location == shared_server.soap_url
    assert {"GetServiceInfo", "GetDeviceData"} <= set(port.methods)


def test_suds_calls_get_service_info(suds):
    info = suds.service.GetServiceInfo()
    assert info.__class__.__name__ == "ServiceInfo"
    assert "1.0" in list(info.interfaceVersions)
    operations = list(info.operations)
    assert "GetServiceInfo" in operations
    assert len(operations) == len(set(operations))
    roots = {mo.rootUri for mo in info.managementObjects}
    assert "./DevInfo" in roots
    assert info.serverTime is not None and info.serverTime.year >= 2024


def test_suds_reads_fault_detail(suds):
    with pytest.raises(WebFault) as raised:
        suds.service.GetDeviceData(device={"deviceId": "x"}, uris=["./DevInfo"])
    fault = raised.value.fault
    assert str(fault.faultcode).endswith(":Client")
    assert str(fault.faultstring).startswith("UnknownDevice")
    assert fault.detail.FaultDetail.code == "UnknownDevice"
    assert "'x'" in fault.detail.FaultDetail.message
