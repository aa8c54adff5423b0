"""RFID over LLRP: supervised sllurp clients, normalised and deduplicated tag reads."""

from rfid.reads import Deduplicator, ReadStats, TagReportNormaliser
from rfid.supervisor import ReaderSupervisor

__all__ = ["Deduplicator", "ReadStats", "ReaderSupervisor", "TagReportNormaliser"]
