"""The whole gate under load: N lanes x M trucks through `hwsim run` and the real `gated run`.

    .venv/bin/python bench/make_synthetic.py /tmp/gate-photos --count 2000 --workers 2
    .venv/bin/python bench/gate.py --lanes 8 --rate 250 --minutes 10 --photos /tmp/gate-photos

Starts a mosquitto broker, the simulated gate (every device of every lane and a simulated TOS,
real protocols on loopback) and the daemon as its own process, exactly as a site would run it;
the simulator sends M trucks per lane, arriving at random (Poisson) at `--rate` an hour per
lane, in real time. The bench stops by itself: when the simulator has judged every truck, or
`--grace-minutes` after the last planned arrival.

Prints:
- trucks per hour per lane: the lane's decisions, first to last, per hour (what the lane kept
  up with; the offered rate is shown beside it), and the simulator's verdict per outcome;
- decision latency, from the visit's last device input (camera pictures, tag, scan, weight,
  card) to the decision, as the lane measures it (its log line per decision, OCR included):
  median, p90, p99, max; and the daemon's own /metrics histogram as a cross-check;
- CPU seconds per truck of the daemon and of its OCR worker processes (from /proc, from the
  first truck to the end), and of the simulator and the broker apart;
- peak RSS (VmHWM) of each daemon process and the largest sum of the daemon's processes'
  RSS seen in the 1 s samples;
- the machine's load average and the CPU other processes took meanwhile: on a shared machine
  wall-clock figures are only as good as that.
Targets (issue 8): decision p99 < 3 s with OCR of 5 images per truck; 8 lanes at 250 trucks
an hour each on 2 cores; peak RSS < 400 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hwsim.plan import site_plan  # noqa: E402
from tests.servers import Mosquitto, free_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")
DECIDED = re.compile(
    r"lane (\S+): (PROCEED|TROUBLE|INSPECTION) for \S+, ([\d.]+) s after the last input"
)
ARRIVED = re.compile(r"lane (\S+): truck arrived")
BUCKET = re.compile(r'^gated_decision_latency_seconds_bucket\{le="([^"]+)"\} (\S+)$')


# --- processes, from /proc ---------------------------------------------------------------------


@dataclass
class Proc:
    pid: int
    role: str
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    hwm_mb: float = 0.0


def read_proc(pid: int) -> tuple[int, float, float, float] | None:
    """(parent pid, CPU seconds, RSS MB, peak RSS MB) of a live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces
    memory = {}
    for line in status.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            memory[key] = int(value.split()[0]) / 1024.0
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    return int(fields[1]), cpu, memory.get("VmRSS", 0.0), memory.get("VmHWM", 0.0)


def read_pss(pid: int) -> float:
    """Proportional set size in MB: shared library pages split among the processes sharing
    them, so the PSS of several processes adds up (their RSS counts shared pages in each)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def children_of(pid: int) -> list[int]:
    """Every descendant of a process (the daemon's OCR workers and multiprocessing helpers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = read_proc(int(entry.name))
            if info is not None:
                parents[int(entry.name)] = info[0]
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


def role_of(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    if "resource_tracker" in cmdline:
        return "resource tracker"
    if "multiprocessing" in cmdline:
        return "OCR worker"
    return cmdline.split(" ")[0].rsplit("/", 1)[-1] or "?"


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used since boot (every core)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    return (sum(values[:8]) - idle) / TICKS


@dataclass
class Sampler:
    """Samples the daemon, its children, the simulator and the broker every second."""

    groups: dict[str, int]  # group name -> root pid
    procs: dict[int, Proc] = field(default_factory=dict)
    group_of: dict[int, str] = field(default_factory=dict)
    peak_sum_mb: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    peak_pss_mb: float = 0.0  # the daemon's processes together
    loads: list[float] = field(default_factory=list)

    def sample(self) -> None:
        self.loads.append(os.getloadavg()[0])
        totals: dict[str, float] = defaultdict(float)
        pss = 0.0
        for group, root in self.groups.items():
            for pid in [root, *children_of(root)]:
                info = read_proc(pid)
                if info is None:
                    continue
                proc = self.procs.get(pid)
                if proc is None:
                    proc = self.procs[pid] = Proc(pid, group if pid == root else role_of(pid))
                    self.group_of[pid] = group
                _, proc.cpu_s, proc.rss_mb, hwm = info
                proc.hwm_mb = max(proc.hwm_mb, hwm)
                totals[group] += proc.rss_mb
                if group == "daemon":
                    pss += read_pss(pid)
        self.peak_pss_mb = max(self.peak_pss_mb, pss)
        for group, total in totals.items():
            self.peak_sum_mb[group] = max(self.peak_sum_mb[group], total)

    def cpu(self) -> dict[int, float]:
        return {pid: proc.cpu_s for pid, proc in self.procs.items()}

    def in_group(self, group: str) -> list[Proc]:
        return [p for pid, p in self.procs.items() if self.group_of[pid] == group]


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Run:
    workdir: Path
    lanes: int
    trucks_per_lane: int
    rate: float
    warmup_s: float
    config: Path = field(init=False)
    state: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.workdir / "site.yaml"
        self.state = self.workdir / "sim"


def python_env() -> dict[str, str]:
    """Children import this checkout (a worktree of HEAD works the same way)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO}:{path}" if path else str(REPO)}


def write_inputs(run: Run, mqtt_port: int, seed: int) -> tuple[Path, int]:
    kiosk_port = free_port()
    plan = site_plan(
        run.lanes, run.state, mqtt_port=mqtt_port, camera_port=free_port(),
        kiosk_port=kiosk_port, port_of=lambda _lane, _device: free_port(),
    )
    run.config.write_text(yaml.safe_dump(plan, sort_keys=False))
    scenario = run.workdir / "scenario.yaml"
    scenario.write_text(yaml.safe_dump({
        "name": f"bench {run.lanes}x{run.trucks_per_lane}",
        "seed": seed,
        "lanes": run.lanes,
        "speed": 1.0,
        "patience_s": 30,
        "random_trucks": run.lanes * run.trucks_per_lane,
        "arrival_rate_per_hour": run.rate,
        "random_start_s": run.warmup_s,
    }, sort_keys=False))
    return scenario, kiosk_port


def gated(*args: str) -> list[str]:
    return [sys.executable, "-m", "gated.cli", *args]


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def fetch_metrics(port: int) -> str:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"http://127.0.0.1:{port}/metrics", timeout=5
        ) as response:
            return str(response.read().decode())
    except OSError as exc:
        return f"# unavailable: {exc}\n"


def first_arrival_seen(log: Path) -> bool:
    try:
        with log.open(errors="replace") as handle:
            return any(ARRIVED.search(line) for line in handle)
    except OSError:
        return False


def drive(run: Run, args: argparse.Namespace, broker: Mosquitto) -> dict[str, Any]:
    """Run simulator and daemon until the simulator is done or the time is up."""
    scenario, kiosk_port = write_inputs(run, broker.port, args.seed)
    env = python_env()
    hwsim_cmd = [sys.executable, "-m", "hwsim.cli", "run", "--config", str(run.config),
                 "--scenario", str(scenario), "--state-dir", str(run.state), "--wait-for-gate",
                 "--summary-json", str(run.workdir / "summary.json"),
                 "--difficulty", str(args.difficulty)]
    if args.photos:
        hwsim_cmd += ["--photos", str(args.photos)]
    gated_log = run.workdir / "gated.log"
    with (run.workdir / "hwsim.log").open("wb") as hwsim_out, gated_log.open("wb") as gated_out:
        hwsim = subprocess.Popen(hwsim_cmd, stdout=hwsim_out, stderr=subprocess.STDOUT,
                                 cwd=run.workdir, env=env)
        daemon = None
        try:
            deadline = time.monotonic() + 120
            while not (run.state / "drivers.csv").exists():
                if hwsim.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"hwsim did not start; see {run.workdir / 'hwsim.log'}")
                time.sleep(0.2)
            for command in (("drivers", "enroll", str(run.state / "drivers.csv")),
                            ("ccl", "import", str(run.state / "ccl.txt"))):
                subprocess.run(gated(*command, "--config", str(run.config)), check=True,
                               capture_output=True, cwd=run.workdir, env=env)
            daemon = subprocess.Popen(gated("run", "--config", str(run.config)),
                                      stdout=gated_out, stderr=subprocess.STDOUT,
                                      cwd=run.workdir, env=env)
            return watch(run, args, hwsim, daemon, broker, kiosk_port)
        finally:
            if daemon is not None:
                stop(daemon)
            stop(hwsim)


def watch(
    run: Run, args: argparse.Namespace, hwsim: subprocess.Popen[bytes],
    daemon: subprocess.Popen[bytes], broker: Mosquitto, kiosk_port: int,
) -> dict[str, Any]:
    assert broker.process is not None
    sampler = Sampler({"daemon": daemon.pid, "hwsim": hwsim.pid, "mosquitto": broker.process.pid})
    gated_log = run.workdir / "gated.log"
    arrivals_s = run.trucks_per_lane / run.rate * 3600
    started = time.monotonic()
    hard_stop = started + 120 + run.warmup_s + arrivals_s + args.grace_minutes * 60
    baseline: dict[str, Any] | None = None
    history: list[tuple[float, float]] = []  # (monotonic, CPU of the daemon's processes)
    while True:
        sampler.sample()
        now = time.monotonic()
        history.append((now, sum(p.cpu_s for p in sampler.in_group("daemon"))))
        if baseline is None and first_arrival_seen(gated_log):
            # the idle daemon's CPU: over the last 10 s before the first truck (warmed up)
            earlier = [h for h in history if h[0] <= now - 10] or history[:1]
            idle = (history[-1][1] - earlier[-1][1]) / max(now - earlier[-1][0], 1e-9)
            baseline = {"cpu": sampler.cpu(), "at": now, "busy": machine_busy_s(),
                        "rss": {pid: p.rss_mb for pid, p in sampler.procs.items()},
                        "idle": idle if now - earlier[-1][0] >= 5 else None}
        if hwsim.poll() is not None or daemon.poll() is not None or now > hard_stop:
            break
        time.sleep(1.0)
    timed_out = hwsim.poll() is None
    sampler.sample()
    metrics = fetch_metrics(kiosk_port)
    end = {"cpu": sampler.cpu(), "at": time.monotonic(), "busy": machine_busy_s()}
    return {"sampler": sampler, "baseline": baseline, "end": end, "metrics": metrics,
            "timed_out": timed_out, "daemon_exit": daemon.poll(), "hwsim_exit": hwsim.poll()}


# --- figures -----------------------------------------------------------------------------------


def parse_log(path: Path) -> tuple[dict[str, list[float]], list[float], Counter[str]]:
    """Decision times per lane (seconds, local clock), latencies, decisions by outcome."""
    times: dict[str, list[float]] = defaultdict(list)
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        decided = DECIDED.search(match.group(2)) if match else None
        if match is None or decided is None:
            continue
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        times[decided.group(1)].append(at)
        outcomes[decided.group(2)] += 1
        latencies.append(float(decided.group(3)))
    return times, latencies, outcomes


def planned_rates(run: Run) -> dict[str, float]:
    """Each lane's arrivals per hour as the scenario planned them (first to last arrival)."""
    from hwsim.scenario import expand, load_scenario

    arrivals: dict[str, list[float]] = defaultdict(list)
    for truck in expand(load_scenario(run.workdir / "scenario.yaml")):
        arrivals[truck.lane].append(truck.at)
    return {
        lane: (len(ats) - 1) / (max(ats) - min(ats)) * 3600
        for lane, ats in arrivals.items() if len(ats) >= 2 and max(ats) > min(ats)
    }


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def histogram(metrics: str) -> dict[str, float]:
    buckets = {}
    for line in metrics.splitlines():
        match = BUCKET.match(line)
        if match:
            buckets[match.group(1)] = float(match.group(2))
    return buckets


def metric_value(metrics: str, name: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def report(run: Run, args: argparse.Namespace, result: dict[str, Any], load_start: float,
           cpus: int) -> dict[str, Any]:
    sampler: Sampler = result["sampler"]
    times, latencies, outcomes = parse_log(run.workdir / "gated.log")
    decided = sum(outcomes.values())
    summary_path = run.workdir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    lines = [
        f"gate bench: {run.lanes} lanes x {run.trucks_per_lane} trucks, offered at "
        f"{run.rate:g} an hour per lane (Poisson), real time; pictures: "
        f"{args.photos or 'rendered by the simulator'}",
        f"machine: {cpus} CPUs; load average 1 min: {load_start:.2f} at the start, during the "
        f"run min {min(sampler.loads):.2f} mean {statistics.fmean(sampler.loads):.2f} "
        f"max {max(sampler.loads):.2f}",
    ]
    figures: dict[str, Any] = {"lanes": run.lanes, "trucks_per_lane": run.trucks_per_lane,
                               "rate": run.rate, "load_start": load_start,
                               "load_max": max(sampler.loads),
                               "load_mean": statistics.fmean(sampler.loads)}
    if result["timed_out"]:
        lines.append("  stopped at the time limit: the simulator had not finished")
    base, end = result["baseline"], result["end"]
    ours = sum(p.cpu_s for p in sampler.procs.values())
    if base is not None:
        span = end["at"] - base["at"]
        others = (end["busy"] - base["busy"]) - (ours - sum(base["cpu"].values()))
        lines.append(f"  other processes of the machine used {others / span:.2f} of the "
                     f"{cpus} cores during the run ({span:.0f} s): figures are noisy")
        figures["other_cores"] = others / span
    by_outcome = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    lines.append(f"trucks decided: {decided} ({by_outcome})")
    if summary is not None:
        got = Counter(t["got"] or "none" for t in summary["trucks"])
        lines.append(f"  simulator's verdict: {len(summary['trucks'])} trucks, "
                     f"{summary['mismatches']} not as expected, "
                     f"{summary.get('unread', '?')} unread by OCR (TOS saw "
                     f"{', '.join(f'{k} {v}' for k, v in sorted(got.items()))})")
    rates = {}
    for lane in sorted(times, key=lambda x: int(x) if x.isdigit() else 0):
        stamps = times[lane]
        if len(stamps) >= 2 and stamps[-1] > stamps[0]:
            rates[lane] = (len(stamps) - 1) / (stamps[-1] - stamps[0]) * 3600
    planned = planned_rates(run)
    if rates:
        lines.append("trucks per hour per lane, first to last decision (first to last planned "
                     "arrival):")
        lines.append("  " + ", ".join(f"{lane}: {rate:.0f} ({planned.get(lane, 0):.0f})"
                                      for lane, rate in rates.items()))
        lines.append(f"  mean {statistics.fmean(rates.values()):.0f} "
                     f"({statistics.fmean(planned.values()):.0f} planned), min "
                     f"{min(rates.values()):.0f}; offered {run.rate:g}, Poisson arrivals, so "
                     f"a short run's planned rate differs from it by chance")
        figures["trucks_per_hour_per_lane"] = rates
        figures["planned_per_hour_per_lane"] = planned
    if latencies:
        p50, p90, p99 = (quantile(latencies, q) for q in (0.5, 0.9, 0.99))
        lines.append(f"decision latency (last device input to decision, n={len(latencies)}): "
                     f"median {p50:.2f} s, p90 {p90:.2f} s, p99 {p99:.2f} s, "
                     f"max {max(latencies):.2f} s")
        figures.update(latency_p50=p50, latency_p90=p90, latency_p99=p99,
                       latency_max=max(latencies))
    buckets = histogram(result["metrics"])
    if buckets:
        lines.append(f"  daemon's /metrics histogram: {buckets.get('3', 0):g} of "
                     f"{buckets.get('+Inf', 0):g} decisions within 3 s")
    ocr_count = metric_value(result["metrics"], "gated_ocr_seconds_count")
    if ocr_count:
        ocr_sum = metric_value(result["metrics"], "gated_ocr_seconds_sum")
        lines.append(f"OCR: {ocr_count:g} images, {ocr_sum / ocr_count:.2f} s each on average "
                     f"(wall time in the worker, {ocr_count / max(decided, 1):.1f} per truck)")
    if base is not None and decided:
        if base["idle"] is not None:
            lines.append(f"CPU of the idle daemon ({run.lanes} lanes polling their devices) "
                         f"before the first truck: {base['idle']:.3f} cores")
            figures["idle_cores"] = base["idle"]
        lines.append(f"CPU seconds per truck (from the first truck on, {decided} trucks):")
        per_role: Counter[str] = Counter()
        for group in ("daemon", "hwsim", "mosquitto"):
            for proc in sampler.in_group(group):
                used = proc.cpu_s - base["cpu"].get(proc.pid, 0.0)
                role = proc.role if group == "daemon" else group
                per_role[role] += used
        daemon_total = sum(v for k, v in per_role.items() if k not in ("hwsim", "mosquitto"))
        for role, used in per_role.most_common():
            lines.append(f"  {role:18s} {used:8.1f} s  {used / decided:6.3f} s per truck")
        lines.append(f"  daemon and its workers: {daemon_total / decided:.3f} s per truck "
                     f"({daemon_total / (end['at'] - base['at']):.2f} cores on average)")
        figures["cpu_per_truck"] = daemon_total / decided
        figures["cpu_by_role"] = dict(per_role)
    lines.append("peak RSS (VmHWM), and RSS when the first truck came:")
    idle_rss = base["rss"] if base is not None else {}
    for proc in sampler.in_group("daemon"):
        lines.append(f"  {proc.role:18s} pid {proc.pid:7d} {proc.hwm_mb:7.1f} MB"
                     f"  (idle {idle_rss.get(proc.pid, 0.0):6.1f} MB)")
    hwm_sum = sum(p.hwm_mb for p in sampler.in_group("daemon"))
    lines.append(f"  daemon's processes together: {sampler.peak_sum_mb['daemon']:.0f} MB at "
                 f"the worst 1 s sample (sum of each one's peak: {hwm_sum:.0f} MB)")
    lines.append(f"  daemon's processes together, PSS (shared pages counted once): "
                 f"{sampler.peak_pss_mb:.0f} MB at the worst 1 s sample")
    lines.append(f"  simulator {sampler.peak_sum_mb['hwsim']:.0f} MB, broker "
                 f"{sampler.peak_sum_mb['mosquitto']:.0f} MB (not the daemon's)")
    figures.update(rss_peak_sum=sampler.peak_sum_mb["daemon"], rss_hwm_sum=hwm_sum,
                   pss_peak_sum=sampler.peak_pss_mb)
    lines.append(targets(figures, run, result["timed_out"]))
    print("\n".join(lines))
    return figures


def targets(figures: dict[str, Any], run: Run, timed_out: bool) -> str:
    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    rates = figures.get("trucks_per_hour_per_lane") or {}
    planned = figures.get("planned_per_hour_per_lane") or {}
    p99 = figures.get("latency_p99")
    # a lane kept up when its decisions came at >= 90 % of the rate its trucks were planned to
    # arrive at; the simulated lane's own cycle (about 10 s a truck, 30 s more for a truck that
    # waits for a barrier that stays closed) bounds it too, so this is not the daemon's alone
    kept = [lane for lane, rate in rates.items() if rate >= 0.9 * planned.get(lane, 0.0)]
    offered = run.lanes >= 8 and run.rate >= 250
    parts = [
        f"p99 < 3 s {mark(p99 is not None and p99 < 3.0)}",
        f"8 lanes x 250/h {'offered' if offered else 'NOT offered'}, every truck decided "
        f"{'NO (time limit)' if timed_out else 'yes'}, lanes within 90 % of their planned "
        f"arrivals {len(kept)} of {run.lanes}",
        f"RSS < 400 MB {mark(figures['rss_hwm_sum'] < 400)} (sum of each process's peak; "
        f"PSS {mark(figures['pss_peak_sum'] < 400)})",
    ]
    return "targets: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lanes", type=int, default=8, help="lanes (8)")
    parser.add_argument("--rate", type=float, default=250.0,
                        help="trucks an hour per lane, Poisson arrivals (250)")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="arrival window: M = rate x minutes trucks per lane (10)")
    parser.add_argument("--trucks", type=int, help="trucks per lane (overrides --minutes)")
    parser.add_argument("--photos", type=Path,
                        help="pictures from bench/make_synthetic.py (labels.csv); without it "
                        "the simulator renders pictures during the run, on the same cores")
    parser.add_argument("--difficulty", type=float, default=0.35,
                        help="difficulty of pictures the simulator renders (0.35)")
    parser.add_argument("--grace-minutes", type=float, default=4.0,
                        help="time allowed after the last planned arrival (4)")
    parser.add_argument("--seed", type=int, default=8, help="seed of the arrivals (8)")
    parser.add_argument("--warmup", type=float, default=30.0,
                        help="seconds the daemon runs idle before the first truck (30)")
    parser.add_argument("--workdir", type=Path, help="keep logs, database and config here "
                        "(default: a temporary folder, removed unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", type=Path, help="also write the figures to FILE")
    args = parser.parse_args(argv)
    trucks = args.trucks or max(2, round(args.rate * args.minutes / 60))
    if args.photos is not None and not (args.photos / "labels.csv").is_file():
        parser.error(f"{args.photos}/labels.csv not found: make it with bench/make_synthetic.py")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gate-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run = Run(workdir.resolve(), args.lanes, trucks, args.rate, args.warmup)
    load_start = os.getloadavg()[0]
    broker = Mosquitto(run.workdir / "mosquitto")
    broker.start()
    try:
        result = drive(run, args, broker)
    finally:
        broker.stop()
    figures = report(run, args, result, load_start, os.cpu_count() or 1)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    if args.workdir is None and not args.keep:
        shutil.rmtree(run.workdir, ignore_errors=True)
    else:
        shutil.rmtree(run.state / "images", ignore_errors=True)
        print(f"logs, configuration and database kept in {run.workdir}")
    return 0 if result["daemon_exit"] in (None, 0) else 1


if __name__ == "__main__":
    sys.exit(main())
