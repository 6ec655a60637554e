"""Authentication on the SOAP request path (ES5, OF5, MDM1-3, OES1-3).

* ``principals`` — who may call, from the policy file (``conf/policy.toml``)
* ``wsse`` — verifying a request's wsse:Security header (X.509 signature, UsernameToken)
* ``trust`` — whether a certificate is trusted (CA bundle or pin)
* ``replay`` — the per-process replay cache
* ``authenticate`` — message and transport credentials -> one principal
* ``signing`` — signing responses and pushes
* ``encryption`` — XML Encryption of Bodies (responses out, requests in)
* ``mtls`` — HTTPS client certificates into the WSGI environ
* ``middleware`` — the WSGI wrapper the host puts in front of spyne
* ``faults`` — wsse fault codes and the fault document
"""
from dmwsi.security.encryption import encrypt_envelope
from dmwsi.security.middleware import secure_soap_app
from dmwsi.security.signing import SignaturePlugin, sign_envelope

__all__ = ["secure_soap_app", "sign_envelope", "encrypt_envelope", "SignaturePlugin"]
