"""The one canonical form of OMA DM node URIs (issue 8)."""
import pytest

from dmwsi.dm.uri import BadUri, canonical, path_of


@pytest.mark.parametrize("uri,expected", [
    ("./DevInfo/Mod", ("./DevInfo/Mod", "")),
    ("DevInfo/Mod", ("./DevInfo/Mod", "")),
    (".", (".", "")),
    ("./DevDetail?list=Struct", ("./DevDetail", "list=Struct")),
    ("./DevDetail/FwV?prop=ACL", ("./DevDetail/FwV", "prop=ACL")),
])
def test_canonical_uris(uri, expected):
    assert canonical(uri) == expected


@pytest.mark.parametrize("uri", [
    "", "./A/../B", "./A/..", "../A", "./A/./B", "./A/.", "./A//B", "./A/", "/A", "./A/%2e%2e/B", "./A/%2E/B",
    "./A?acl=x", "./A?list", "./A?list=x?prop=ACL", "./A\\B", "./A/\nB",
])
def test_non_canonical_uris_are_refused(uri):
    with pytest.raises(BadUri):
        canonical(uri)


def test_path_of_drops_the_query():
    assert path_of("./A/B?list=Struct") == "./A/B"
