"""A simulated LLRP reader: wire encoder, TCP server, scriptable tag field, fault injection."""

from hwsim.llrp.faults import Faults
from hwsim.llrp.server import SimulatedReader
from hwsim.llrp.tagfield import Presence, TagField

__all__ = ["Faults", "Presence", "SimulatedReader", "TagField"]
