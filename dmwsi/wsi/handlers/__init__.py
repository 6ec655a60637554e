"""Operation handlers, one module per operation group.

A handler is ``handler(call, request) -> dict``: ``request`` holds the
operation's request fields as plain Python values (absent optional fields are
missing keys), the returned dict the response fields. Operations with no
handler here answer the NotImplemented fault.
"""
from dmwsi.wsi.handlers import bulk, devices, discovery, jobs, registry, reports

HANDLERS = {**bulk.HANDLERS, **devices.HANDLERS, **discovery.HANDLERS, **registry.HANDLERS, **jobs.HANDLERS, **reports.HANDLERS}
