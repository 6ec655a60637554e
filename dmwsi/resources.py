"""The files dmwsi ships besides code: default settings and the SOAP contract.

They live at the top of the repository (conf/, wsdl/, xsd/: the contract is a
public artefact, edited there) and the package reaches them through the
links dmwsi/conf, dmwsi/wsdl and dmwsi/xsd. Building a wheel copies the
linked files in as package data, so the same paths hold in a checkout, an
editable install and an installed wheel, and ``importlib.resources.files
("dmwsi") / "conf"`` finds them too. A WSDL includes its XSD as
``../xsd/<name>.xsd``; that resolves in every layout because wsdl/ and xsd/
stay siblings.

Nothing here may point into the source checkout: a wheel has none.
"""
from pathlib import Path

_PACKAGE_DIR = Path(__file__).parent   # installed as files on disk, never zipped: lxml parses by path
CONF_DIR = _PACKAGE_DIR / "conf"
WSDL_DIR = _PACKAGE_DIR / "wsdl"   # xsd/ is reached from the WSDLs, not by name
