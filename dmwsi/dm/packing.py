"""Filling a message up to the peer's MaxMsgSize (§4), and large objects (§5).

Both ends of a DM session (the server's engine and the simulated device)
build each message the same way: as many whole commands (or Results items)
as fit, and an item too big for any message goes out as a large object, one
piece per message, the first carrying Meta/Size and all but the last
MoreData. What "fits" means is the caller's: a function that serializes the
candidate message and compares it with the budget, so XML escaping, WBXML
and header growth are counted exactly instead of estimated.
"""


def fitting(count, fits):
    """The largest ``n`` in ``0..count`` for which ``fits(n)`` holds.

    ``fits`` must not hold for some ``n`` and then hold again for a larger
    one (more content never makes a message smaller); ``fits(0)`` is not
    asked. A binary search: about log2(count) serializations instead of one
    per candidate, which matters for a message of thousands of commands."""
    low, high = 0, count            # fits(low) holds (or low == 0); fits(n) fails for every n > high
    if count and fits(count):
        return count
    high = count - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


class LargeObject:
    """An item's data on its way out in pieces, one per message."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    @property
    def size(self):
        """The whole object's length: what the first piece's Meta/Size says."""
        return len(self.data)

    @property
    def first(self):
        return self.pos == 0

    @property
    def done(self):
        return self.pos >= len(self.data)

    def next_piece(self, fits, minimum=1):
        """The longest next piece ``fits(piece, last)`` accepts, consumed, or
        None (nothing consumed) when not even ``minimum`` characters fit:
        a message that small carries more overhead than data."""
        remaining = len(self.data) - self.pos
        n = fitting(remaining, lambda n: fits(self.data[self.pos:self.pos + n], n == remaining))
        if n < min(minimum, remaining) or n == 0:
            return None
        piece = self.data[self.pos:self.pos + n]
        self.pos += n
        return piece
