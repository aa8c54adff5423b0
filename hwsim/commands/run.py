"""`hwsim run`: a simulated gate complex on loopback, a simulated TOS, and a scenario's trucks."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import yaml

_LOGGER = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run", help="simulate a whole gate (cameras, LLRP, RPM, PLC, card reader, scale, "
        "printer) and a TOS, and drive a scenario's trucks through it",
    )
    parser.add_argument("--config", help="the daemon's site configuration: devices listen "
                        "where it says (default: the port plan of docs/hwsim.md)")
    parser.add_argument("--lanes", type=int, default=None,
                        help="lanes to simulate with the port plan (ignored with --config)")
    parser.add_argument("--scenario", help="scenario YAML (hwsim/scenarios/*.yaml); without "
                        "one the devices run idle until Ctrl-C")
    parser.add_argument("--photos", help="folder of real photos with labels.csv; default: "
                        "synthetic pictures")
    parser.add_argument("--speed", type=float, help="override the scenario's speed factor")
    parser.add_argument("--difficulty", type=float, default=0.35,
                        help="how hard synthetic pictures are to read, 0 (clean) to 1")
    parser.add_argument("--state-dir", default="var/hwsim",
                        help="where pty links, enrolment files and devices.json go")
    parser.add_argument("--mqtt-host", default=None, help="broker of the simulated TOS")
    parser.add_argument("--mqtt-port", type=int, default=None, help="broker port")
    parser.add_argument("--no-tos", action="store_true", help="do not simulate the TOS")
    parser.add_argument("--wait-for-gate", action="store_true",
                        help="start the trucks once the daemon is online on MQTT")
    parser.add_argument("--write-config", help="write the daemon configuration of this "
                        "simulated gate to FILE (with --lanes)")
    parser.add_argument("--summary-json", help="write the outcome summary to FILE")
    parser.add_argument("--linger", action="store_true",
                        help="keep the devices running after the scenario until Ctrl-C")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130


def _site(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from gated.config import load_config
    from hwsim.plan import plan_config, site_plan

    if args.config:
        return load_config(args.config)
    lanes = args.lanes or 2
    if args.write_config:
        plan = site_plan(lanes, args.state_dir, mqtt_port=args.mqtt_port or 18830)
        Path(args.write_config).write_text(yaml.safe_dump(plan, sort_keys=False))
        print(f"hwsim: daemon configuration written to {args.write_config}")
    return plan_config(lanes, args.state_dir, mqtt_port=args.mqtt_port or 18830)


async def _main(args: argparse.Namespace) -> int:
    from hwsim.gate import SimulatedGate, assign_photo_containers
    from hwsim.images import PhotoFolder
    from hwsim.scenario import Scenario, expand, load_scenario
    from hwsim.tos import SimulatedTos
    from hwsim.world import World, write_summary

    site = _site(args)
    scenario = load_scenario(args.scenario) if args.scenario else Scenario(
        name="idle", lanes=len(site.lanes))
    if args.speed:
        scenario = scenario.model_copy(update={"speed": args.speed})
    photos = PhotoFolder(args.photos) if args.photos else None
    trucks = expand(scenario)
    if photos is not None:
        trucks = assign_photo_containers(trucks, photos)

    gate = SimulatedGate(site, Path(args.state_dir), photos=photos, seed=scenario.seed,
                         difficulty=args.difficulty)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    tos = None
    try:
        await gate.start()
        files = gate.write_enrolment(trucks)
        gate.write_devices(files)
        for item in gate.listening:
            print(f"hwsim: lane {item.lane:>2} {item.device:14s} {item.where}")
        print(f"hwsim: enrol drivers from {files['drivers']}, canceled cards in {files['ccl']}")
        sys.stdout.flush()
        if not args.no_tos:
            tos = SimulatedTos(args.mqtt_host or site.mqtt.host,
                               args.mqtt_port or site.mqtt.port, site.site_id,
                               site.mqtt.topic_prefix)
            await asyncio.to_thread(tos.start)
            if args.wait_for_gate:
                print("hwsim: waiting for the gate to come online")
                sys.stdout.flush()
                if not await _wait_online(tos, stop):
                    return 1
        if not trucks:
            print("hwsim: devices idle; Ctrl-C stops")
            await stop.wait()
            return 0
        world = World(scenario, gate.rigs, gate.cameras, tos, trucks=trucks)
        world_task = asyncio.create_task(world.run(), name="world")
        stop_task = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait({world_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if world_task not in done:
            world_task.cancel()
            await asyncio.gather(world_task, return_exceptions=True)
            return 130
        stop_task.cancel()
        summary = world_task.result()
        print(summary.text())
        if args.summary_json:
            write_summary(summary, args.summary_json)
        if args.linger:
            print("hwsim: scenario done; devices keep running until Ctrl-C")
            await stop.wait()
        return 0 if summary.mismatches == 0 else 1
    finally:
        if tos is not None:
            await asyncio.to_thread(tos.stop)
        await gate.stop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)


async def _wait_online(tos: object, stop: asyncio.Event) -> bool:
    while not stop.is_set():
        if getattr(tos, "availability", None) == "online":
            return True
        await asyncio.sleep(0.2)
    return False

