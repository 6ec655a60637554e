"""zeep clients for our own endpoints (the CLI, tests, pushes to consumers)."""
import zeep
from zeep.transports import Transport


def soap_client(url, timeout=60, session=None):
    """A client for the DMWSI endpoint at ``url``, built from its served WSDL."""
    transport = Transport(timeout=timeout, operation_timeout=timeout, session=session)
    client = zeep.Client(url + "?wsdl", transport=transport)
    return client
