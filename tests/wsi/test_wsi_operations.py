"""Every contract operation is callable through zeep: a built one never
answers NotImplemented, an unbuilt one always does (never a fake success)."""
from datetime import datetime, timezone

import pytest
from zeep.exceptions import Fault

from dmwsi.contract import XS, load_contract
from dmwsi.wsi.handlers import HANDLERS
from tests.conftest import fault_code

CONTRACT = load_contract()
SAMPLES = {"string": "x", "int": 1, "long": 1, "boolean": True,
           "dateTime": datetime(2030, 1, 1, tzinfo=timezone.utc), "base64Binary": b"x"}


def minimal(type_qname):
    """The smallest schema-valid value of a contract type."""
    if type_qname[0] == XS:
        return SAMPLES[type_qname[1]]
    if type_qname in CONTRACT.enums:
        return CONTRACT.enums[type_qname][0]
    value = {}
    for f in CONTRACT.complex_types[type_qname]:
        if f.min_occurs:
            sample = minimal(f.type)
            value[f.name] = [sample] * f.min_occurs if f.repeated else sample
    return value


@pytest.mark.parametrize("operation", sorted(CONTRACT.operations))
def test_operation_is_built_or_says_not_implemented(soap, operation):
    request = minimal(CONTRACT.elements[CONTRACT.operations[operation].input])
    try:
        getattr(soap.service, operation)(**request)
    except Fault as fault:
        code = fault_code(fault)
        assert code not in ("InvalidRequest", "InternalError"), fault.message
        if operation in HANDLERS:
            assert code != "NotImplemented"
        else:
            assert code == "NotImplemented"
            assert fault.code.endswith("Server")
            assert operation in fault.message
    else:
        assert operation in HANDLERS, f"{operation} answered without a handler"


def test_service_info_lists_exactly_the_built_operations(soap):
    info = soap.service.GetServiceInfo()
    assert info.interfaceVersions == ["1.0"]
    assert info.callbackVersions == ["1.0"]
    assert set(info.operations) == set(HANDLERS) & set(CONTRACT.operations)
    assert {mo.moId for mo in info.managementObjects} >= {
        "urn:oma:mo:oma-dm-devinfo:1.0", "urn:oma:mo:oma-fumo:1.0", "urn:oma:mo:oma-scomo:1.0"}
    from cryptography import x509
    cert = x509.load_der_x509_certificate(info.serverCertificate)
    assert "dmwsi development" in cert.subject.rfc4514_string()


def test_list_management_objects_has_node_descriptions(soap):
    mos = soap.service.ListManagementObjects(moIds=["urn:oma:mo:oma-fumo:1.0"], includeNodes=True)
    assert [mo.moId for mo in mos] == ["urn:oma:mo:oma-fumo:1.0"]
    nodes = {n.path: n for n in mos[0].nodes}
    assert nodes["<x>/State"].format == "int"
    assert "Exec" in nodes["<x>/DownloadAndUpdate"].accessTypes
    bare = soap.service.ListManagementObjects(includeNodes=False)
    assert len(bare) >= 6 and all(not mo.nodes for mo in bare)


def test_network_parameters_come_from_config(start_server):
    from dmwsi.client import soap_client
    server = start_server(network={"apn": "corp.example", "mms_proxy": "10.0.0.1"})
    client = soap_client(server.soap_url)
    params = {p.name: p.value for p in client.service.GetNetworkParameters()}
    assert params["apn"] == "corp.example" and params["mms_proxy"] == "10.0.0.1"
    only = client.service.GetNetworkParameters(names=["apn"])
    assert [(p.name, p.value) for p in only] == [("apn", "corp.example")]
