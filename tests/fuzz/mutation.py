"""The mutations both fuzz grammars apply to what they generate: on an lxml
tree (drop, duplicate, reorder, insert and re-namespace elements) and on
bytes (truncate, flip, insert). One piece for the SOAP envelopes
(tests/fuzz/soap_grammar.py) and the SyncML messages (tests/fuzz/dm_grammar.py).

Every draw here goes through a strategy hypothesis caches or one the
caller built once: a strategy made afresh per draw is validated and
labelled each time, and that cost more than the HTTP round trips of a run.

What a mutation draws never depends on the tree or the bytes it mutates:
positions are drawn in a fixed range and scaled (``index``), and every draw
is made even when there is nothing to apply it to. The DM messages embed
values found at run time (live RespURI tokens, sessions, correlators), so
the same choices can meet a different tree when hypothesis replays or
shrinks an example; a draw whose bounds came from the tree would then make
hypothesis stop with FlakyStrategyDefinition instead of reporting the
failure. Draws shrink to 0: the first element, the first position.
"""
import copy

from hypothesis import strategies as st
from lxml import etree


_SCALE = 1 << 16
_POSITION = st.integers(0, _SCALE - 1)


def index(draw, n):
    """A number in 0..n-1 (0 if n is 0), drawn in a range that does not depend on n."""
    return draw(_POSITION) * n // _SCALE


def pick(draw, values):
    """One of ``values`` (a sequence made at run time), or None if it is empty."""
    at = index(draw, len(values))
    return values[at] if values else None


def elements(root):
    """The elements a mutation may touch: every element below ``root``."""
    return [e for e in root.iter() if isinstance(e.tag, str) and e is not root]


def drop(draw, root):
    target = pick(draw, elements(root))
    if target is not None:
        target.getparent().remove(target)


def duplicate(draw, root):
    target = pick(draw, elements(root))
    if target is not None:
        target.addnext(copy.deepcopy(target))


_SWAPS = st.integers(1, 4)


def reorder(draw, root):
    """The children of one element in another order: 1 to 4 swaps of two of
    them (a swap of a child with itself, what shrinking goes to, keeps the order)."""
    parent = pick(draw, [e for e in root.iter() if isinstance(e.tag, str) and len(e) > 1])
    swaps = [(draw(_POSITION), draw(_POSITION)) for _ in range(draw(_SWAPS))]
    if parent is None:
        return
    children = list(parent)
    for a, b in swaps:
        i, j = a * len(children) // _SCALE, b * len(children) // _SCALE
        children[i], children[j] = children[j], children[i]
    for child in list(parent):
        parent.remove(child)
    parent.extend(children)


def renamespace(namespaces):
    """A mutation moving the root or one element into one of ``namespaces`` ("" = none)."""
    namespace = st.sampled_from(namespaces)

    def mutation(draw, root):
        target = pick(draw, [root] + elements(root))
        ns, local = draw(namespace), etree.QName(target).localname
        target.tag = f"{{{ns}}}{local}" if ns else local
    return mutation


def insert_element(names, namespaces, texts=None):
    """A mutation inserting an element named one of ``names`` in one of
    ``namespaces`` ("" = none), holding a text of ``texts`` if given, at a
    random place below the root or one of its elements."""
    name, namespace = st.sampled_from(names), st.sampled_from(namespaces)

    def mutation(draw, root):
        parent = pick(draw, [root] + elements(root))
        ns, local = draw(namespace), draw(name)
        child = etree.Element(f"{{{ns}}}{local}" if ns else local)
        if texts is not None:
            child.text = draw(texts)
        parent.insert(index(draw, len(parent) + 1), child)
    return mutation


def mutate_tree(draw, root, mutations, most=3):
    """Apply 1 to ``most`` of ``mutations`` (a sampled_from strategy of them)
    to ``root`` in place. A mutation that finds nothing to work on (no
    element left below the root) does nothing."""
    for _ in range(draw(st.integers(1, most))):
        draw(mutations)(draw, root)
    return root


# ---- bytes ------------------------------------------------------------------------------

def truncate(draw, data):
    """The first bytes only (at least one fewer)."""
    return data[:index(draw, len(data))]


_FLIPS, _BYTE = st.integers(1, 8), st.integers(0, 255)


def flip(draw, data):
    """Up to eight bytes replaced by random ones."""
    data = bytearray(data)
    for _ in range(draw(_FLIPS)):
        at, value = index(draw, len(data)), draw(_BYTE)
        if data:
            data[at] = value
    return bytes(data)


def insert_bytes(draw, data, snippets):
    """A snippet of ``snippets`` (a strategy of bytes) inserted at a random place."""
    at = index(draw, len(data) + 1)
    return data[:at] + draw(snippets) + data[at:]
