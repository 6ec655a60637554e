"""Namespaces and algorithm URIs of SOAP 1.1, WS-Security 1.0/1.1, XML-DSig and XML-Enc."""
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"

X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
UT_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_DIGEST = UT_PROFILE + "#PasswordDigest"
PASSWORD_TEXT = UT_PROFILE + "#PasswordText"

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

# Configuration name -> SignatureMethod URI.
SIGNATURE_ALGORITHMS = {
    "rsa-sha1": "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "rsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "rsa-sha384": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "rsa-sha512": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
}
# DigestMethod URI -> the signature algorithm that must be allowed for it.
DIGEST_ALGORITHMS = {
    "http://www.w3.org/2000/09/xmldsig#sha1": "rsa-sha1",
    "http://www.w3.org/2001/04/xmlenc#sha256": None,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": None,
    "http://www.w3.org/2001/04/xmlenc#sha512": None,
}
