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


@pytest.mark.parametrize("uri", ["./Browser/Favorites/x.y", "./Vendor/...x", "./Browser/Favorites/My%20Page"])
def test_dots_inside_names_and_other_escapes_are_plain_characters(uri):
    assert path_of(uri) == uri


@pytest.mark.parametrize("uri", ["./A/%252e%252e/DMAcc", "./A/x%2ey", "./A%2fB", "./A/..%2F..%2FDMAcc", "./A%252FB",
                                 ".//A", "./", None])
def test_encoded_separators_at_any_depth_and_empty_roots_are_refused(uri):
    with pytest.raises(BadUri):
        canonical(uri)


FAVORITES = {"roles": {"partner": {"nodes": [{"path": "./Browser/Favorites/**", "actions": ["Replace", "Get"]}]}}}


@pytest.mark.parametrize("uri", ["./Browser/Favorites/../../DMAcc/dmwsi/AppAddr",
                                 "./Browser/Favorites/%2e%2e/%2e%2e/DMAcc/dmwsi/AppAddr",
                                 "./Browser/Favorites//x", "./Browser/Favorites/x/"])
def test_authorizer_matches_no_rule_for_a_non_canonical_uri(uri):
    from dmwsi.authz import Authorizer
    authz = Authorizer.from_policy(FAVORITES)
    assert authz.may_touch(["partner"], "./Browser/Favorites/x", "Replace")    # the rule itself works
    assert authz.may_touch(["partner"], "Browser/Favorites/x", "Replace")      # relative: the same node
    assert not authz.may_touch(["partner"], uri, "Replace")
    assert not authz.may_list(["partner"], uri + "?list=Struct")


def test_a_non_canonical_policy_rule_is_a_policy_error():
    from dmwsi.authz import AuthzError, Authorizer
    with pytest.raises(AuthzError):
        Authorizer.from_policy({"roles": {"r": {"nodes": [{"path": "./A/../**", "actions": ["Get"]}]}}})
