"""The dispatcher's bookkeeping: the transaction-log row states the outcome
the caller actually received (issue 9 item 6)."""
import pytest
import zeep

from dmwsi.wsi import handlers
from tests.conftest import fault_code


def test_a_response_that_cannot_be_shaped_is_logged_as_the_fault_it_became(start_server, monkeypatch):
    """A handler succeeds but its answer does not fit the contract: the caller
    gets InternalError, and the log must say so - not success."""
    def broken(call, request):
        return {"info": {"noSuchField": 1}}
    monkeypatch.setitem(handlers.HANDLERS, "GetServiceInfo", broken)
    server = start_server()
    from dmwsi.client import soap_client
    client = soap_client(server.soap_url)
    with pytest.raises(zeep.exceptions.Fault) as raised:
        client.service.GetServiceInfo()
    assert fault_code(raised.value) == "InternalError"
    rows, _ = server.store.query_log(principal="anonymous")
    row, = [r for r in rows if r.operation == "GetServiceInfo"]
    assert row.success is False and row.error_code == "InternalError"


def test_a_success_is_logged_once_with_its_job(soap, shared_server):
    info = soap.service.GetServiceInfo()
    assert info.operations        # the real answer, not merely "no fault"
    rows, _ = shared_server.store.query_log(principal="anonymous")
    assert any(r.operation == "GetServiceInfo" and r.success and r.error_code is None for r in rows)
