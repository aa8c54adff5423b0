"""The sllurp 3.0.5 failure that `rfid.client` works around, reproduced against the simulator.

When this test starts failing, sllurp has fixed the silent thread death on a bad parameter and
the framing in `rfid.client.SupervisedClient` can be reconsidered.
"""

from __future__ import annotations

import asyncio
import logging

from sllurp.llrp import LLRPReaderClient, LLRPReaderState

from hwsim.llrp import SimulatedReader
from rfid.client import sllurp_config
from tests.llrp_helpers import EPC_TRUCK


async def test_plain_sllurp_thread_dies_silently_on_a_truncated_parameter(caplog):
    caplog.set_level(logging.CRITICAL, logger="sllurp")
    async with SimulatedReader(tick_s=0.005) as reader:
        reader.field.show(EPC_TRUCK, antenna=1, rate=50)
        client = LLRPReaderClient(
            "127.0.0.1", reader.port, sllurp_config([1], None, 0.1, 1, 100)
        )
        disconnected: list[object] = []
        tags: list[object] = []
        client.add_disconnected_callback(disconnected.append)
        client.add_tag_report_callback(lambda _c, reports: tags.extend(reports))
        await asyncio.to_thread(client.connect)
        try:
            for _ in range(200):
                if tags:
                    break
                await asyncio.sleep(0.01)
            assert tags
            reader.inject_truncated_parameter()
            for _ in range(200):
                if not client.is_alive():
                    break
                await asyncio.sleep(0.01)
            assert not client.is_alive()
            assert disconnected == []  # nobody is told
            assert client.llrp.state == LLRPReaderState.STATE_INVENTORYING
        finally:
            client.hard_disconnect()
