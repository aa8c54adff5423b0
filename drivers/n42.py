"""ANSI N42.42 radiation data files (2011/2012 `RadInstrumentData` and 2006 `N42InstrumentData`).

Portal monitors record occupancies in N42.42: a series of measurements (samples) with gross
counts or spectra per detector, an occupancy indicator, instrument faults and the monitor's own
analysis (alarms, nuclides). This module turns such a file into the same `Occupancy` records as
the ASCII line protocol, with the daemon's own verdict next to the monitor's. Namespaces are
ignored (elements are matched by local name) so vendor variants of the schema parse too.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drivers.rpm_lines import Occupancy

_LOGGER = logging.getLogger(__name__)

_DURATION = re.compile(r"^-?P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?$")
_TRUE = {"1", "true", "yes"}


class N42Error(ValueError):
    """A file that is not N42.42 or lacks what an occupancy needs."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


def _descendants(element: ET.Element, name: str) -> list[ET.Element]:
    return [node for node in element.iter() if _local(node.tag) == name]


def parse_duration(text: str | None) -> float | None:
    """Seconds of an ISO 8601 duration such as PT0.1S or PT1M30S."""
    if not text:
        return None
    match = _DURATION.match(text.strip())
    if match is None:
        return None
    days, hours, minutes, seconds = match.groups()
    return (
        int(days or 0) * 86400
        + int(hours or 0) * 3600
        + int(minutes or 0) * 60
        + float(seconds or 0.0)
    )


def parse_datetime(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def gross_from_channels(text: str, compression: str | None) -> float:
    """Total counts of a spectrum; CountedZeroes writes a run of zeros as `0 <run length>`."""
    values = [float(v) for v in text.split()]
    if not (compression or "").lower().startswith("countedzero"):
        return sum(values)
    total, index = 0.0, 0
    while index < len(values):
        if values[index] == 0:
            index += 2  # a zero and the length of its run: no counts
            continue
        total += values[index]
        index += 1
    return total


@dataclass
class Sample:
    """One measurement: counts per detector over `duration` seconds."""

    index: int
    at: datetime | None
    duration: float
    occupied: bool | None
    gamma: dict[str, float] = field(default_factory=dict)
    neutron: dict[str, float] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    groups: set[str] = field(default_factory=set)
    background_class: bool = False


@dataclass
class N42File:
    samples: list[Sample]
    gamma_detectors: list[str]
    neutron_detectors: list[str]
    alarms: list[tuple[set[str], str, str]]  # (measurement groups, category, description)
    nuclides: list[tuple[set[str], str]]


def _detector_kinds(root: ET.Element) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for info in _descendants(root, "RadDetectorInformation"):
        name = info.get("id") or _child_text(info, "RadDetectorName") or ""
        category = (_child_text(info, "RadDetectorCategoryCode") or "").lower()
        kinds[name] = "neutron" if "neutron" in category else "gamma"
    return kinds


def _kind_from_text(*texts: str | None) -> str:
    joined = " ".join(t for t in texts if t).lower()
    return "neutron" if "neutron" in joined or "he3" in joined or "he-3" in joined else "gamma"


def _widest_window(root: ET.Element) -> dict[str, int]:
    """Per EnergyWindows id, the index of the widest window (the gross count)."""
    widest: dict[str, int] = {}
    for windows in _descendants(root, "EnergyWindows"):
        starts = (_child_text(windows, "WindowStartEnergyValues") or "").split()
        ends = (_child_text(windows, "WindowEndEnergyValues") or "").split()
        try:
            widths = [float(e) - float(s) for s, e in zip(starts, ends, strict=False)]
        except ValueError:
            continue
        if widths:
            widest[windows.get("id", "")] = widths.index(max(widths))
    return widest


def _parse_2012(root: ET.Element) -> N42File:
    kinds = _detector_kinds(root)
    widest = _widest_window(root)
    samples = []
    for index, measurement in enumerate(_descendants(root, "RadMeasurement"), start=1):
        occupancy = _child_text(measurement, "OccupancyIndicator")
        sample = Sample(
            index=index,
            at=parse_datetime(_child_text(measurement, "StartDateTime")),
            duration=parse_duration(_child_text(measurement, "RealTimeDuration")) or 0.0,
            occupied=None if occupancy is None else occupancy.lower() in _TRUE,
            groups=set((measurement.get("radMeasurementGroupReferences") or "").split()),
            background_class=(_child_text(measurement, "MeasurementClassCode") or "").lower()
            == "background",
        )
        for counts in _children(measurement, "GrossCounts"):
            detector = counts.get("radDetectorInformationReference", "")
            values = [float(v) for v in (_child_text(counts, "CountData") or "0").split()]
            window = widest.get(counts.get("energyWindowsReference", ""), 0)
            total = values[window] if window < len(values) else sum(values)
            _store(sample, kinds.get(detector, "gamma"), detector, total)
        for spectrum in _children(measurement, "Spectrum"):
            detector = spectrum.get("radDetectorInformationReference", "")
            for data in _children(spectrum, "ChannelData"):
                total = gross_from_channels(data.text or "", data.get("compressionCode"))
                _store(sample, kinds.get(detector, "gamma"), detector, total)
        for fault in _descendants(measurement, "Fault"):
            description = _child_text(fault, "FaultDescription") or "fault"
            severity = _child_text(fault, "FaultSeverityCode")
            sample.faults.append(f"monitor: {description}" + (f" ({severity})" if severity else ""))
        samples.append(sample)
    alarms, nuclides = [], []
    for results in _descendants(root, "AnalysisResults"):
        groups = set((results.get("radMeasurementGroupReferences") or "").split())
        for alarm in _descendants(results, "RadAlarm"):
            category = (_child_text(alarm, "RadAlarmCategoryCode") or "").lower()
            alarms.append((groups, category, _child_text(alarm, "RadAlarmDescription") or ""))
        for nuclide in _descendants(results, "Nuclide"):
            identified = (_child_text(nuclide, "NuclideIdentifiedIndicator") or "true").lower()
            if identified in _TRUE:
                nuclides.append((groups, _child_text(nuclide, "NuclideName") or "unknown"))
    return _assemble(samples, alarms, nuclides)


def _parse_2006(root: ET.Element) -> N42File:
    samples = []
    for index, data in enumerate(_descendants(root, "DetectorData"), start=1):
        occupied = _child_text(data, "Occupied")
        sample = Sample(
            index=index,
            at=parse_datetime(_child_text(data, "StartTime")),
            duration=parse_duration(_child_text(data, "SampleRealTime")) or 0.0,
            occupied=None if occupied is None else occupied.lower() in _TRUE,
        )
        for measurement in _children(data, "DetectorMeasurement"):
            group_kind = _kind_from_text(measurement.get("DetectorType"))
            for spectrum in _descendants(measurement, "Spectrum"):
                detector = spectrum.get("Detector", "")
                kind = _kind_from_text(measurement.get("DetectorType"), detector,
                                       _child_text(spectrum, "DetectorType"))
                for channels in _children(spectrum, "ChannelData"):
                    total = gross_from_channels(channels.text or "", channels.get("Compression"))
                    _store(sample, kind, detector, total)
                if not sample.duration:
                    sample.duration = parse_duration(_child_text(spectrum, "RealTime")) or 0.0
            for gross in _descendants(measurement, "GrossCounts"):
                detector = gross.get("Detector") or measurement.get("Detector") or ""
                values = [float(v) for v in (gross.text or "0").split()] or [0.0]
                _store(sample, group_kind, detector, sum(values))
        samples.append(sample)
    alarms: list[tuple[set[str], str, str]] = []
    for element in root.iter():
        name = _local(element.tag).lower()
        text = (element.text or "").strip()
        if "alarm" in name and text and text.lower() not in ("0", "false", "none"):
            alarms.append((set(), _kind_from_text(name, text), text))
    return _assemble(samples, alarms, [])


def _store(sample: Sample, kind: str, detector: str, total: float) -> None:
    target = sample.neutron if kind == "neutron" else sample.gamma
    target[detector] = target.get(detector, 0.0) + total


def _assemble(
    samples: list[Sample],
    alarms: list[tuple[set[str], str, str]],
    nuclides: list[tuple[set[str], str]],
) -> N42File:
    gamma = sorted({d for s in samples for d in s.gamma})
    neutron = sorted({d for s in samples for d in s.neutron})
    return N42File(samples, gamma, neutron, alarms, nuclides)


def load(path: str | Path) -> N42File:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise N42Error(f"{path}: not readable XML: {exc}") from exc
    name = _local(root.tag)
    if name == "RadInstrumentData":
        return _parse_2012(root)
    nested = [node for node in root.iter() if _local(node.tag) == "N42InstrumentData"]
    if name == "N42InstrumentData" or nested:
        return _parse_2006(nested[0] if nested else root)
    raise N42Error(f"{path}: root element {name} is not N42.42")


def _background(
    samples: list[Sample], detectors: list[str], kind: str
) -> tuple[float, ...] | None:
    """Counts per second per detector over every idle sample; None when there is none."""
    idle = [
        s for s in samples if s.occupied is False or (s.occupied is None and s.background_class)
    ]
    time = sum(s.duration for s in idle if s.duration > 0)
    if not detectors or time <= 0:
        return None
    values = []
    for detector in detectors:
        total = sum(getattr(s, kind).get(detector, 0.0) for s in idle if s.duration > 0)
        values.append(total / time)
    return tuple(values)


def _runs(samples: list[Sample]) -> list[list[Sample]]:
    """Consecutive occupied samples; without any occupancy indicator, every non-background one."""
    if all(s.occupied is None for s in samples):
        flags = [not s.background_class for s in samples]
    else:
        flags = [bool(s.occupied) for s in samples]
    runs: list[list[Sample]] = []
    current: list[Sample] = []
    for sample, occupied in zip(samples, flags, strict=True):
        if occupied:
            current.append(sample)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def occupancies(data: N42File, n_sigma: float) -> list[Occupancy]:
    """The file's occupancies, judged by the daemon's rule, with the monitor's alarms."""
    gamma_bg = _background(data.samples, data.gamma_detectors, "gamma")
    neutron_bg = _background(data.samples, data.neutron_detectors, "neutron")
    runs = _runs(data.samples)
    result = []
    for number, run in enumerate(runs, start=1):
        duration = run[0].duration or 1.0
        window = max(1, round(1.0 / duration))
        occupancy = Occupancy(
            started_at=run[0].at,
            first_line=run[0].index,
            gamma_background=gamma_bg,
            neutron_background=neutron_bg,
            n_sigma=n_sigma,
            occupancy_id=number,
            gamma_window=window,
            neutron_window=window,
        )
        for sample in run:
            occupancy.add_gamma([sample.gamma.get(d, 0.0) for d in data.gamma_detectors], sample.at)
            if data.neutron_detectors:
                counts = [sample.neutron.get(d, 0.0) for d in data.neutron_detectors]
                occupancy.add_neutron(counts, sample.at)
            for fault in sample.faults:
                occupancy.add_fault(fault)
        end = run[-1].at + timedelta(seconds=run[-1].duration) if run[-1].at else None
        occupancy.finish(complete=True, at=end, line_no=run[-1].index)
        result.append(occupancy)
    _attach_analysis(data, runs, result)
    return result


def _attach_analysis(data: N42File, runs: list[list[Sample]], result: list[Occupancy]) -> None:
    """Give each occupancy the alarms and nuclides of the analysis that refers to its samples;
    an analysis that names no group of any sample belongs to every occupancy in the file."""

    def targets(groups: set[str]) -> list[Occupancy]:
        matched = [o for o, run in zip(result, runs, strict=True)
                   if any(groups & s.groups for s in run)]
        return matched or result

    for groups, category, description in data.alarms:
        for occupancy in targets(groups):
            if "neutron" in category:
                occupancy.monitor_neutron_alarm = True
            elif category in ("gamma", "isotope") or "gamma" in category:
                occupancy.monitor_gamma_alarm = True
            else:
                occupancy.add_fault(f"monitor alarm: {category or description}")
    for groups, name in data.nuclides:
        for occupancy in targets(groups):
            if name not in occupancy.nuclides:
                occupancy.nuclides.append(name)
