"""`gated ocr [--visit] [--json] IMAGE...`: read container numbers from gate-camera images."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from gated.config import ConfigError, OcrConfig, load_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ocr", help="read the container number on images (one result per image, or per visit)"
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument(
        "--visit", action="store_true", help="the images are one truck: fuse them per container"
    )
    parser.add_argument("--json", action="store_true", help="print JSON (one object per line)")
    parser.add_argument("--camera", default=None, help="camera name to record on each read")
    parser.add_argument(
        "--config", default=None, help="site configuration (its ocr section: threshold and engines)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here: `gated run` registers this command too, and must not load OpenCV
    from ocr import EngineUnavailable, make_engines, read_image, read_visit

    settings = OcrConfig()  # without a site file, the defaults a site file would have
    if args.config:
        try:
            settings = load_config(args.config).ocr
        except ConfigError as exc:
            print(f"{exc.source}: invalid configuration, {len(exc.issues)} error(s)")
            return 2
    min_confidence = settings.min_confidence
    try:
        engine = make_engines(settings.engine, settings.fallback_engine)
    except EngineUnavailable as exc:
        print(f"error: {exc}")
        return 2
    if args.visit:
        visit_read = read_visit(
            args.images, [args.camera] * len(args.images), engine, min_confidence
        )
        reads = list(visit_read.reads)
        # Only containers at or above the threshold are answers; the rest are for a clerk.
        accepted = [asdict(c) for c in visit_read.accepted]
        doubtful = [asdict(c) for c in visit_read.containers if c not in visit_read.accepted]
        visit: dict[str, Any] = {
            "containers": accepted,
            "doubtful": doubtful,
            "images": [_read_dict(r) for r in reads],
        }
        if args.json:
            print(json.dumps(visit))
        else:
            for c, state in [(c, "") for c in accepted] + [(c, " (doubtful)") for c in doubtful]:
                print(
                    f"{c['container_number']} {c['size_type'] or '----'} "
                    f"{c['confidence']:.2f} from {len(c['images'])} image(s){state}"
                )
            if not accepted:
                print("no container number read with confidence")
    else:
        reads = [
            read_image(path, camera=args.camera, engine=engine, min_confidence=min_confidence)
            for path in args.images
        ]
        for read in reads:
            if args.json:
                print(json.dumps(_read_dict(read)))
            else:
                number = read.container_number or "unreadable"
                detail = f" ({read.error})" if read.error else ""
                print(f"{read.image}: {number} {read.confidence:.2f}{detail}")
    return 1 if all(r.error for r in reads) else 0


def _read_dict(read: Any) -> dict[str, Any]:
    row = asdict(read)
    row["region"] = list(read.region) if read.region else None
    return row
