import base64

import pytest
from lxml import etree

from dmwsi.records import ResultItem
from dmwsi.sim.tree import (
    EXECUTABLE,
    GROWABLE,
    READ_REPLACE,
    REPLACE_ONLY,
    TNDS_NAMESPACE,
    TNDS_XML_TYPE,
    DMTree,
    ExecRequest,
    TreeCommand,
    TreeCommandError,
    TreeConfig,
    join_uri,
    matches_pattern,
    normalize_uri,
    parse_acl,
    parse_uri,
)

SERVER = "srv1"
OTHER = "srv2"
FULL = f"Add={SERVER}&Delete={SERVER}&Exec={SERVER}&Get={SERVER}&Replace={SERVER}"
NS = {"t": TNDS_NAMESPACE}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000_000.0  # 2001-09-09T01:46:40Z

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def build_tree(clock: FakeClock, **config) -> DMTree:
    tree = DMTree(TreeConfig(**config), clock=clock)
    tree.create_interior("./App", acl=FULL, access=GROWABLE, type="urn:example:mo:app:1.0")
    tree.create_leaf("./App/Name", "demo", access=READ_REPLACE)
    tree.create_leaf("./App/Count", "3", format="int", access=READ_REPLACE)
    tree.create_interior("./App/Fixed")
    tree.create_leaf("./App/Fixed/Serial", "S1")
    tree.create_leaf("./App/Fixed/Token", "t", access=REPLACE_ONLY)
    tree.create_interior("./App/Run", access=EXECUTABLE)
    tree.create_interior("./App/Secret", acl=f"Add={SERVER}&Replace={SERVER}&Delete={SERVER}", access=GROWABLE)
    tree.create_leaf("./App/Secret/Pin", "1234", access=READ_REPLACE)
    return tree


@pytest.fixture
def tree(clock: FakeClock) -> DMTree:
    return build_tree(clock)


def value_of(tree: DMTree, uri: str, server_id: str = SERVER):
    status, result = tree.get(uri, server_id)
    assert status == 200, (uri, status)
    assert len(result.items) == 1
    return result.items[0].value


# --------------------------------------------------------------------------- URIs


@pytest.mark.parametrize("uri", ["App/Name", "./App/Name", "./App/Name/", "App/Name/"])
def test_uri_forms_normalize_to_absolute(uri):
    assert normalize_uri(uri) == "./App/Name"


@pytest.mark.parametrize("uri", [".", "./", ""])
def test_root_forms(uri):
    assert parse_uri(uri).segments == ()
    assert normalize_uri(uri) == "."


def test_percent_escaped_slash_is_part_of_the_name():
    assert parse_uri("./A/B%2FC?prop=Name").segments == ("A", "B/C")
    assert join_uri(("A", "B/C")) == "./A/B%2FC"
    assert normalize_uri("A/B%2FC?prop=ACL") == "./A/B%2FC?prop=ACL"


@pytest.mark.parametrize("uri", ["/App", "./App//Name", "./App?prop"])
def test_malformed_uris_are_bad_requests(tree, uri):
    assert tree.get(uri, SERVER)[0] == 400
    assert not tree.exists(uri)


def test_matches_pattern():
    assert matches_pattern("./S/Download/*/Operations/Install", "S/Download/App1/Operations/Install")
    assert not matches_pattern("./S/Download/*", "./S/Download/App1/Operations")
    assert not matches_pattern("./S/Download/*", "./S/Other/App1")


def test_escaped_node_names_round_trip(tree):
    assert tree.add("./App/a%2Fb", "x", "chr", None, SERVER) == 200
    assert tree.node("./App").children["a/b"].value == "x"
    assert value_of(tree, "./App").split("/")[-1] == "a%2Fb"
    assert value_of(tree, "./App/a%2Fb") == "x"


def test_depth_limit_gives_414(clock):
    tree = build_tree(clock, max_depth=3)
    assert tree.get("./App/Fixed/Serial", SERVER)[0] == 200
    assert tree.add("./App/G", None, "node", None, SERVER) == 200
    assert tree.add("./App/G/H", None, "node", None, SERVER) == 200
    assert tree.add("./App/G/H/I", "x", "chr", None, SERVER) == 414
    assert tree.get("./App/G/H/I", SERVER)[0] == 414


def test_total_length_limit_gives_414(clock):
    tree = DMTree(TreeConfig(max_total_length=len("Abc/De%2F")), clock=clock, root_acl="Add=*&Get=*")
    assert tree.add("./Abc", None, "node", None, SERVER) == 200
    assert tree.add("./Abc/De%2F", "x", "chr", None, SERVER) == 200
    assert tree.add("./Abc/De%2FX", "x", "chr", None, SERVER) == 414
    assert tree.get("./Abc/De%2FX", SERVER)[0] == 414


def test_segment_length_limit_gives_414(clock):
    tree = DMTree(TreeConfig(max_segment_length=5), clock=clock, root_acl="Add=*&Get=*&Replace=*")
    assert tree.add("./Short", "x", "chr", None, SERVER) == 200
    assert tree.add("./TooLong", "x", "chr", None, SERVER) == 414
    assert tree.add("./Sh", "x", "chr", None, SERVER) == 200
    assert tree.replace("./Sh?prop=Name", "Longer", None, None, SERVER) == 414
    assert tree.exists("./Sh")


def test_exists_and_walk(tree):
    assert tree.exists("App/Fixed/Serial")
    assert not tree.exists("./App/Nope")
    assert [uri for uri, _ in tree.walk("./App/Fixed")] == ["./App/Fixed", "./App/Fixed/Serial", "./App/Fixed/Token"]


# --------------------------------------------------------------------------- ACL


def test_parse_acl_grammar():
    assert parse_acl("Get=*&Replace=srv1+srv2") == {"Get": {"*"}, "Replace": {"srv1", "srv2"}}
    assert parse_acl("") == {}
    for bad in ("Get", "Frobnicate=srv1", "Get=", "Get=a b", "Get=srv1&&Add=x"):
        with pytest.raises(TreeCommandError) as error:
            parse_acl(bad)
        assert error.value.status == 400


def test_acl_is_inherited_from_nearest_ancestor_with_a_value(tree):
    assert tree.node("./App/Name").acl == ""
    assert tree.get("./App/Name", SERVER)[0] == 200
    assert tree.get("./App/Name", OTHER)[0] == 425
    # Secret has its own ACL without Get: its child inherits the whole ACL.
    assert tree.get("./App/Secret/Pin", SERVER)[0] == 425
    assert tree.replace("./App/Secret/Pin", "9999", None, None, SERVER) == 200
    # Root ACL Add=*&Get=* applies to any server.
    assert tree.get(".", OTHER)[0] == 200


def test_wildcard_and_multiple_server_ids(tree):
    assert tree.replace("./App/Name?prop=ACL", f"Get=*&Replace={SERVER}+{OTHER}", None, None, SERVER) == 200
    assert tree.get("./App/Name", "anyone") == (200, tree.get("./App/Name", SERVER)[1])
    assert tree.replace("./App/Name", "changed", None, None, OTHER) == 200
    assert tree.replace("./App/Name", "again", None, None, "anyone") == 425


# --------------------------------------------------------------------------- Get


def test_get_leaf(tree):
    status, result = tree.get("App/Count", SERVER)
    assert status == 200
    assert result.items == (ResultItem(uri="./App/Count", format="int", type="text/plain", value="3"),)


def test_get_interior_lists_child_names(tree):
    status, result = tree.get("./App", SERVER)
    assert status == 200
    assert result.items == (
        ResultItem(uri="./App", format="node", type="urn:example:mo:app:1.0", value="Name/Count/Fixed/Run/Secret"),
    )


def test_get_status_codes(tree):
    assert tree.get("./App/Missing", SERVER) == (404, None)
    assert tree.get("./App/Name", OTHER) == (425, None)
    assert tree.get("./App/Fixed/Token", SERVER) == (405, None)
    assert tree.get("./App?frob=1", SERVER) == (406, None)


def test_get_properties(tree, clock):
    expected = {
        "ACL": "",
        "Format": "int",
        "Name": "Count",
        "Size": "1",
        "Title": "",
        "TStamp": "20010909T014640Z",
        "Type": "text/plain",
        "VerNo": "0",
    }
    for prop, value in expected.items():
        status, result = tree.get(f"./App/Count?prop={prop}", SERVER)
        assert status == 200
        assert result.items == (
            ResultItem(uri=f"./App/Count?prop={prop}", format="chr", type="text/plain", value=value),)
    assert value_of(tree, "./App?prop=ACL") == FULL
    assert value_of(tree, "./App?prop=Format") == "node"
    assert value_of(tree, "./App?prop=Type") == "urn:example:mo:app:1.0"


def test_get_property_on_node_without_get_access_is_allowed(tree):
    assert value_of(tree, "./App/Fixed/Token?prop=Format") == "chr"


def test_get_property_errors(tree):
    assert tree.get("./App?prop=Size", SERVER)[0] == 406
    assert tree.get("./App/Name?prop=Colour", SERVER)[0] == 406
    assert tree.get("./App/Name?prop=ACL", OTHER)[0] == 425
    assert tree.get("./App/Nope?prop=ACL", SERVER)[0] == 404


def test_list_struct_omits_data_and_unreadable_nodes(tree):
    status, result = tree.get("./App?list=Struct", SERVER)
    assert status == 200
    assert [item.uri for item in result.items] == [
        "./App", "./App/Name", "./App/Count", "./App/Fixed", "./App/Fixed/Serial", "./App/Run",
    ]
    assert all(item.value is None for item in result.items)
    assert result.items[0] == ResultItem(uri="./App", format="node", type="urn:example:mo:app:1.0", value=None)


def test_list_struct_data_includes_leaf_values(tree):
    status, result = tree.get("./App/Fixed?list=StructData", SERVER)
    assert status == 200
    assert result.items == (
        ResultItem(uri="./App/Fixed", format="node", type="", value=None),
        ResultItem(uri="./App/Fixed/Serial", format="chr", type="text/plain", value="S1"),
    )


def test_list_errors(tree):
    assert tree.get("./App?list=Everything", SERVER)[0] == 406
    assert tree.get("./App?list=Struct", OTHER)[0] == 425
    assert tree.get("./App/Fixed/Token?list=Struct", SERVER)[0] == 405
    assert tree.get("./App?list=TNDS+ACL-Format", SERVER)[0] == 400
    assert tree.get("./App?list=TNDS+Colour", SERVER)[0] == 406


def parse_tnds(tree: DMTree, uri: str, server_id: str = SERVER) -> etree._Element:
    status, result = tree.get(uri, server_id)
    assert status == 200
    (item,) = result.items
    assert (item.format, item.type) == ("xml", TNDS_XML_TYPE)
    return etree.fromstring(item.value.encode())


def test_tnds_document_has_the_readable_subtree(tree):
    document = parse_tnds(tree, "./App?list=TNDS")
    assert document.tag == f"{{{TNDS_NAMESPACE}}}MgmtTree"
    assert document.findtext("t:VerDTD", namespaces=NS) == "1.2"
    top = document.find("t:Node", NS)
    assert top.findtext("t:NodeName", namespaces=NS) == "App"
    assert top.findtext("t:Path", namespaces=NS) == "."
    assert top.findtext("t:RTProperties/t:ACL", namespaces=NS) == FULL
    assert top.find("t:RTProperties/t:Format/t:node", NS) is not None
    assert top.findtext("t:RTProperties/t:Type/t:DDFName", namespaces=NS) == "urn:example:mo:app:1.0"
    children = [node.findtext("t:NodeName", namespaces=NS) for node in top.findall("t:Node", NS)]
    assert children == ["Name", "Count", "Fixed", "Run"]
    count = top.find("t:Node[t:NodeName='Count']", NS)
    assert count.findtext("t:Value", namespaces=NS) == "3"
    assert count.find("t:RTProperties/t:Format/t:int", NS) is not None
    assert count.findtext("t:RTProperties/t:Type/t:MIME", namespaces=NS) == "text/plain"
    assert count.findtext("t:RTProperties/t:TStamp", namespaces=NS) == "20010909T014640Z"
    assert count.findtext("t:RTProperties/t:VerNo", namespaces=NS) == "0"
    # Get-denied subtree and a leaf without Get access are left out.
    assert document.xpath("//t:NodeName[text()='Pin' or text()='Token']", namespaces=NS) == []


def test_tnds_with_listed_properties_only(tree):
    document = parse_tnds(tree, "./App/Fixed?list=TNDS+Value+Format")
    serial = document.find("t:Node/t:Node", NS)
    properties = serial.find("t:RTProperties", NS)
    assert [element.tag.split("}")[1] for element in properties] == ["Format"]
    assert serial.findtext("t:Value", namespaces=NS) == "S1"


def test_tnds_with_excluded_properties(tree):
    document = parse_tnds(tree, "./App/Fixed?list=TNDS-Value-TStamp-VerNo")
    serial = document.find("t:Node/t:Node", NS)
    assert serial.find("t:Value", NS) is None
    assert [element.tag.split("}")[1] for element in serial.find("t:RTProperties", NS)] == ["Format", "Type"]


def test_tnds_encodes_binary_values_as_base64(tree):
    assert tree.add("./App/Blob", base64.b64encode(b"\x00\x01").decode(), "b64", None, SERVER) == 200
    document = parse_tnds(tree, "./App/Blob?list=TNDS+Value+Format+Size")
    node = document.find("t:Node", NS)
    assert node.find("t:RTProperties/t:Format/t:bin", NS) is not None
    assert node.findtext("t:RTProperties/t:Size", namespaces=NS) == "2"
    assert base64.b64decode(node.findtext("t:Value", namespaces=NS)) == b"\x00\x01"


# --------------------------------------------------------------------------- Add


def test_add_leaf_and_interior(tree, clock):
    clock.now += 60
    assert tree.add("./App/Note", "hello", None, None, SERVER) == 200
    assert tree.get("./App/Note", SERVER)[1].items[0] == ResultItem(uri="./App/Note", format="chr", type="text/plain",
                                                                    value="hello")
    assert tree.add("./App/Group", None, "node", "urn:example:mo:group:1.0", SERVER) == 200
    assert value_of(tree, "./App/Group?prop=Type") == "urn:example:mo:group:1.0"
    assert tree.add("./App/Group/Flag", "TRUE", "bool", None, SERVER) == 200
    assert value_of(tree, "./App/Group/Flag") == "true"
    assert value_of(tree, "./App?prop=TStamp") == "20010909T014740Z"


def test_add_status_codes(tree):
    assert tree.add("./App/Name", "x", "chr", None, SERVER) == 418
    assert tree.add("./App/Missing/Leaf", "x", "chr", None, SERVER) == 404
    assert tree.add("./App/Fixed/New", "x", "chr", None, SERVER) == 405
    assert tree.add("./App/Name/Child", "x", "chr", None, SERVER) == 405
    assert tree.add("./App/New", "x", "chr", None, OTHER) == 425
    assert tree.add("./App/New?prop=Title", "x", None, None, SERVER) == 405
    assert tree.add("./App/New", "x", "mp3", None, SERVER) == 415
    assert tree.add("./App/New", "three", "int", None, SERVER) == 400
    assert tree.add("./App/New", "!!", "b64", None, SERVER) == 400
    assert tree.add("./App/New", "data", "node", None, SERVER) == 400
    assert tree.add(".", None, "node", None, SERVER) == 418
    assert not tree.exists("./App/New")


@pytest.mark.parametrize("format_, value", [
    ("int", "-12"), ("float", "1.5e3"), ("bool", "false"), ("date", "2024-05-01"),
    ("time", "12:30:00Z"), ("null", ""), ("xml", "<a/>"), ("chr", "x y"),
])
def test_add_accepts_each_format(tree, format_, value):
    assert tree.add("./App/Typed", value, format_, None, SERVER) == 200
    assert value_of(tree, "./App/Typed?prop=Format") == format_


@pytest.mark.parametrize("format_, value", [
    ("float", "abc"), ("bool", "yes"), ("date", "May 1"), ("time", "noon"), ("null", "x"),
])
def test_add_rejects_values_not_matching_the_format(tree, format_, value):
    assert tree.add("./App/Typed", value, format_, None, SERVER) == 400


def test_add_b64_is_stored_as_bin(tree):
    assert tree.add("./App/Blob", base64.b64encode(b"\xffabc").decode(), "b64", "application/x-test", SERVER) == 200
    status, result = tree.get("./App/Blob", SERVER)
    assert result.items[0] == ResultItem(uri="./App/Blob", format="bin", type="application/x-test", value=b"\xffabc")
    assert value_of(tree, "./App/Blob?prop=Size") == "4"


def test_add_missing_parents_when_configured(clock):
    tree = build_tree(clock, auto_create_parents=True)
    assert tree.add("./App/X/Y/Leaf", "v", "chr", None, SERVER) == 200
    assert value_of(tree, "./App/X/Y?prop=Format") == "node"
    assert value_of(tree, "./App/X/Y/Leaf") == "v"
    assert tree.add("./App/Fixed/A/B", "v", "chr", None, SERVER) == 405
    # A server without Replace on the existing ancestor owns the created parents.
    assert tree.add("./Top/Leaf", "v", "chr", None, OTHER) == 200
    assert parse_acl(tree.node("./Top").acl)["Delete"] == {OTHER}
    assert tree.node("./Top/Leaf").acl == ""


def test_add_interior_without_replace_on_parent_grants_creator_rights(tree):
    assert tree.add("./Mine", None, "node", None, OTHER) == 200
    assert parse_acl(tree.node("./Mine").acl) == {
        "Add": {"*", OTHER}, "Delete": {OTHER}, "Get": {"*"}, "Replace": {OTHER},
    }
    assert tree.add("./Mine/Leaf", "v", "chr", None, OTHER) == 200
    assert tree.replace("./Mine/Leaf", "w", None, None, OTHER) == 200
    assert tree.delete("./Mine", SERVER) == 425
    assert tree.delete("./Mine", OTHER) == 200
    # With Replace on the parent the new node simply inherits.
    assert tree.add("./App/Inherits", None, "node", None, SERVER) == 200
    assert tree.node("./App/Inherits").acl == ""


def test_add_device_full(clock):
    tree = build_tree(clock)
    limit = sum(1 for _ in tree.walk()) + 1
    tree = build_tree(clock, max_nodes=limit)
    assert tree.add("./App/One", "1", "chr", None, SERVER) == 200
    assert tree.add("./App/Two", "2", "chr", None, SERVER) == 420


def test_add_hook_runs_for_matching_nodes(tree):
    added = []
    tree.on_add("./App/*", added.append)
    assert tree.add("App/Group", None, "node", None, SERVER) == 200
    assert tree.add("./App/Group/Leaf", "x", "chr", None, SERVER) == 200
    assert added == ["./App/Group"]


# --------------------------------------------------------------------------- Replace


def test_replace_updates_value_size_tstamp_verno(tree, clock):
    clock.now += 3600
    assert tree.replace("./App/Name", "a longer name", None, None, SERVER) == 200
    assert value_of(tree, "./App/Name") == "a longer name"
    assert value_of(tree, "./App/Name?prop=Size") == "13"
    assert value_of(tree, "./App/Name?prop=VerNo") == "1"
    assert value_of(tree, "./App/Name?prop=TStamp") == "20010909T024640Z"


def test_verno_wraps_at_16_bits(tree):
    tree.node("./App/Name").verno = 0xFFFF
    assert tree.replace("./App/Name", "x", None, None, SERVER) == 200
    assert value_of(tree, "./App/Name?prop=VerNo") == "0"


def test_replace_status_codes(tree):
    assert tree.replace("./App/Missing", "x", None, None, SERVER) == 404
    assert tree.replace("./App/Fixed/Serial", "x", None, None, SERVER) == 405
    assert tree.replace("./App", "x", None, None, SERVER) == 405
    assert tree.replace("./App/Name", "x", None, None, OTHER) == 425
    assert tree.replace("./App/Count", "many", None, None, SERVER) == 400
    assert tree.replace("./App/Count", "7", "chr", None, SERVER) == 415
    assert tree.replace("./App/Name?list=Struct", "x", None, None, SERVER) == 406
    assert value_of(tree, "./App/Count") == "3"


def test_replace_changes_format_and_type_of_dynamic_nodes(tree):
    assert tree.add("./App/Dyn", "1", "int", None, SERVER) == 200
    assert tree.replace("./App/Dyn", "<x/>", "xml", "application/xml", SERVER) == 200
    status, result = tree.get("./App/Dyn", SERVER)
    assert result.items[0] == ResultItem(uri="./App/Dyn", format="xml", type="application/xml", value="<x/>")


def test_replace_missing_node_adds_when_configured(clock):
    tree = build_tree(clock, replace_missing_adds=True)
    assert tree.replace("./App/Implicit", "v", "chr", None, SERVER) == 200
    assert value_of(tree, "./App/Implicit") == "v"


def test_replace_acl_of_leaf_needs_replace_on_parent(tree):
    tree.create_interior("./ReadOnlyParent", acl=f"Get={SERVER}")
    tree.create_leaf("./ReadOnlyParent/Leaf", "v", acl=f"Get={SERVER}&Replace={SERVER}", access=READ_REPLACE)
    assert tree.replace("./ReadOnlyParent/Leaf?prop=ACL", f"Get=*", None, None, SERVER) == 425
    assert tree.replace("./ReadOnlyParent/Leaf", "w", None, None, SERVER) == 200
    assert tree.replace("./App/Name?prop=ACL", f"Get={OTHER}", None, None, SERVER) == 200
    assert tree.get("./App/Name", OTHER)[0] == 200
    assert tree.get("./App/Name", SERVER)[0] == 425


def test_replace_acl_of_interior_with_own_replace_right(tree):
    assert tree.replace("./App/Secret?prop=ACL", f"Get={SERVER}", None, None, SERVER) == 200
    assert value_of(tree, "./App/Secret/Pin") == "1234"


def test_replace_acl_errors(tree):
    assert tree.replace("./App?prop=ACL", "Get", None, None, SERVER) == 400
    assert tree.replace(".?prop=ACL", "", None, None, SERVER) == 425
    tree_root_owner = DMTree(root_acl=f"Add=*&Get=*&Replace={SERVER}")
    assert tree_root_owner.replace(".?prop=ACL", "", None, None, SERVER) == 405
    assert tree_root_owner.replace(".?prop=ACL", "Add=*&Get=*", None, None, SERVER) == 200


def test_replace_title(tree):
    assert tree.replace("./App/Name?prop=Title", "Display name", None, None, SERVER) == 200
    assert value_of(tree, "./App/Name?prop=Title") == "Display name"
    assert tree.replace("./App/Name?prop=Title", "x" * 256, None, None, SERVER) == 413
    assert tree.replace("./App/Fixed/Serial?prop=Title", "t", None, None, SERVER) == 405


def test_replace_name_renames_dynamic_nodes_only(tree):
    assert tree.add("./App/Old", "v", "chr", None, SERVER) == 200
    assert tree.replace("./App/Old?prop=Name", "New", None, None, SERVER) == 200
    assert not tree.exists("./App/Old")
    assert value_of(tree, "./App/New") == "v"
    assert value_of(tree, "./App/New?prop=Name") == "New"
    assert tree.replace("./App/New?prop=Name", "Name", None, None, SERVER) == 418
    assert tree.replace("./App/New?prop=Name", "", None, None, SERVER) == 400
    assert tree.replace("./App/Name?prop=Name", "Renamed", None, None, SERVER) == 405


@pytest.mark.parametrize("prop", ["Format", "Type", "Size", "TStamp", "VerNo"])
def test_replace_read_only_properties_is_not_allowed(tree, prop):
    assert tree.replace(f"./App/Name?prop={prop}", "x", None, None, SERVER) == 405


def test_replace_unknown_property_is_not_supported(tree):
    assert tree.replace("./App/Name?prop=Colour", "x", None, None, SERVER) == 406


# --------------------------------------------------------------------------- Delete


def test_delete_dynamic_subtree(tree, clock):
    assert tree.add("./App/Group", None, "node", None, SERVER) == 200
    assert tree.add("./App/Group/Leaf", "v", None, None, SERVER) == 200
    verno_before = tree.node("./App").verno
    assert tree.delete("./App/Group", SERVER) == 200
    assert not tree.exists("./App/Group/Leaf")
    assert tree.node("./App").verno == verno_before + 1


def test_delete_status_codes(tree):
    assert tree.delete("./App/Missing", SERVER) == 404
    assert tree.delete("./App/Name", SERVER) == 405  # permanent
    assert tree.delete(".", SERVER) == 425
    assert DMTree(root_acl="Add=*&Get=*&Delete=*").delete(".", SERVER) == 405
    assert tree.add("./App/Dyn", "v", None, None, SERVER) == 200
    assert tree.delete("./App/Dyn", OTHER) == 425
    assert tree.delete("./App/Dyn?prop=Title", SERVER) == 405


def test_delete_refuses_subtree_with_permanent_node(tree):
    assert tree.add("./App/Group", None, "node", None, SERVER) == 200
    tree.create_leaf("./App/Group/Pinned", "p")
    assert tree.delete("./App/Group", SERVER) == 405
    assert tree.exists("./App/Group/Pinned")


# --------------------------------------------------------------------------- Copy


def test_copy_leaf_creates_dynamic_duplicate(tree):
    assert tree.copy("./App/Name", "./App/NameCopy", SERVER) == 200
    assert value_of(tree, "./App/NameCopy") == "demo"
    assert tree.delete("./App/NameCopy", SERVER) == 200


def test_copy_subtree_leaves_out_unreadable_nodes(tree):
    assert tree.copy("./App", "./AppCopy", SERVER) == 200
    copied = [uri for uri, _ in tree.walk("./AppCopy")]
    assert "./AppCopy/Fixed/Serial" in copied
    assert "./AppCopy/Secret" not in copied
    assert "./AppCopy/Fixed/Token" not in copied
    assert value_of(tree, "./AppCopy/Count?prop=Format") == "int"


def test_copy_status_codes(tree):
    assert tree.copy("./App/Missing", "./App/X", SERVER) == 404
    assert tree.copy("./App/Name", "./App/Missing/X", SERVER) == 404
    assert tree.copy("./App/Name", "./App/Count", SERVER) == 418
    assert tree.copy("./App/Secret/Pin", "./App/PinCopy", SERVER) == 425
    assert tree.copy("./App/Name", "./App/X", OTHER) == 425
    assert tree.copy("./App/Fixed/Token", "./App/X", SERVER) == 405
    assert tree.copy("./App/Name", "./App/Fixed/X", SERVER) == 405


# --------------------------------------------------------------------------- Exec


def test_exec_dispatches_to_registered_handler(tree):
    calls = []

    def handler(request: ExecRequest) -> int:
        calls.append(request)
        return 202

    tree.register_exec("./App/Run", handler)
    assert tree.exec("App/Run", "param", "corr-1", SERVER) == 202
    assert calls == [ExecRequest("./App/Run", "param", "corr-1", SERVER)]


def test_exec_pattern_handler(tree):
    tree.create_interior("./App/Jobs", access=GROWABLE)
    tree.create_interior("./App/Jobs/J1", access=EXECUTABLE)
    tree.register_exec("./App/Jobs/*", lambda request: 200)
    assert tree.exec("./App/Jobs/J1", None, None, SERVER) == 200


def test_exec_status_codes(tree):
    assert tree.exec("./App/Run", None, None, SERVER) == 501  # no handler
    tree.register_exec("./App/Run", lambda request: 200)
    assert tree.exec("./App/Run", None, None, OTHER) == 425
    assert tree.exec("./App/Name", None, None, SERVER) == 405
    assert tree.exec("./App/Missing", None, None, SERVER) == 404
    assert tree.exec("./App/Run?prop=ACL", None, None, SERVER) == 405


# --------------------------------------------------------------------------- Atomic, snapshot


def test_atomic_success(tree):
    result = tree.atomic([
        TreeCommand("Add", "./App/A", "1", "int"),
        TreeCommand("Replace", "./App/Name", "new"),
        TreeCommand("Copy", "./App/B", source="./App/A"),
    ], SERVER)
    assert result.status == 200
    assert result.member_statuses == (200, 200, 200)
    assert value_of(tree, "./App/B") == "1"


def test_atomic_failure_rolls_back_to_the_exact_state(tree, clock):
    before = tree.snapshot()
    clock.now += 10
    result = tree.atomic([
        TreeCommand("Add", "./App/A", None, "node"),
        TreeCommand("Replace", "./App/Name", "new"),
        TreeCommand("Delete", "./App/Missing"),
        TreeCommand("Add", "./App/Never", "x"),
    ], SERVER)
    assert result.status == 507
    assert result.member_statuses == (216, 216, 404, 215)
    assert tree.snapshot() == before
    assert not tree.exists("./App/A")


def test_atomic_rollback_reports_516_for_executed_exec(tree):
    tree.register_exec("./App/Run", lambda request: 202)
    result = tree.atomic([
        TreeCommand("Exec", "./App/Run"),
        TreeCommand("Replace", "./App/Count", "nope"),
    ], SERVER)
    assert result == type(result)(507, (516, 400))


def test_atomic_rejects_get_and_copy_without_source(tree):
    assert tree.atomic([TreeCommand("Get", "./App/Name")], SERVER).member_statuses == (405,)
    assert tree.atomic([TreeCommand("Copy", "./App/X")], SERVER).member_statuses == (400,)
    assert tree.atomic([TreeCommand("Frob", "./App/X")], SERVER).member_statuses == (400,)


def test_atomic_rolls_back_hook_side_effects(tree):
    tree.on_add("./App/*", lambda uri: tree.create_leaf(f"{uri}/Made", "by hook", permanent=False))
    before = tree.snapshot()
    result = tree.atomic([
        TreeCommand("Add", "./App/G", None, "node"),
        TreeCommand("Add", "./App/Name", "dup"),
    ], SERVER)
    assert result.member_statuses == (216, 418)
    assert tree.snapshot() == before


def test_snapshot_is_independent_of_later_changes(tree):
    snapshot = tree.snapshot()
    assert tree.replace("./App/Name", "changed", None, None, SERVER) == 200
    assert snapshot.root.children["App"].children["Name"].value == "demo"
    tree.restore(snapshot)
    assert value_of(tree, "./App/Name") == "demo"
    assert tree.replace("./App/Name", "again", None, None, SERVER) == 200
    tree.restore(snapshot)
    assert value_of(tree, "./App/Name") == "demo"


# --------------------------------------------------------------------------- device side


def test_device_side_updates_and_errors(tree, clock):
    clock.now += 1
    tree.set_value("./App/Count", "42")
    assert value_of(tree, "./App/Count") == "42"
    assert value_of(tree, "./App/Count?prop=VerNo") == "1"
    with pytest.raises(TreeCommandError) as error:
        tree.set_value("./App/Count", "lots")
    assert error.value.status == 400
    with pytest.raises(TreeCommandError) as error:
        tree.create_leaf("./App/Name", "dup")
    assert error.value.status == 418
    with pytest.raises(TreeCommandError) as error:
        tree.create_leaf("./Nowhere/Leaf", "x")
    assert error.value.status == 404
    tree.remove_node("./App/Fixed")
    assert not tree.exists("./App/Fixed/Serial")
