"""The client's framing: any split of a stream decodes the same; no input raises out of it."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.llrp import protocol as llrp
from rfid.capture import decode_capture

SELECTOR = llrp.ContentSelector(first_seen=True, channel_index=True)


def stream(epcs: list[bytes]) -> bytes:
    parts = [llrp.reader_event_notification(1)]
    for index, epc in enumerate(epcs):
        tag = llrp.TagObservation(epc, 1 + index % 4, -50 - index % 30, index, index)
        parts.append(llrp.ro_access_report([llrp.tag_report_data(tag, SELECTOR, 1)], index))
        if index % 3 == 0:
            parts.append(llrp.keepalive(1000 + index))
    return b"".join(parts)


EPCS = st.lists(
    st.binary(min_size=2, max_size=32).filter(lambda b: len(b) % 2 == 0), min_size=1, max_size=12
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(epcs=EPCS, cuts=st.lists(st.integers(min_value=1, max_value=97), min_size=1))
def test_any_split_decodes_the_same(epcs: list[bytes], cuts: list[int]) -> None:
    data = stream(epcs)
    decoded = decode_capture(data, iter(cuts * (len(data) // max(1, min(cuts)) + 1)))
    assert decoded.failure is None
    assert [tag["EPC"] for tag in decoded.tags] == [epc.hex().encode() for epc in epcs]
    assert decoded.messages["KEEPALIVE"] == (len(epcs) + 2) // 3


@settings(max_examples=150, deadline=None)
@given(prefix=EPCS, garbage=st.binary(max_size=300), cut=st.integers(1, 64))
def test_garbage_never_escapes(prefix: list[bytes], garbage: bytes, cut: int) -> None:
    decoded = decode_capture(stream(prefix) + garbage, iter([cut] * 10_000))
    # the good prefix always decodes; garbage either ends the connection or waits for more
    assert [tag["EPC"] for tag in decoded.tags][: len(prefix)] == [
        epc.hex().encode() for epc in prefix
    ]
