"""`gated ocr [--visit] [--json] IMAGE...`: read container numbers from gate-camera images."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from gated.config import ConfigError, load_config
from ocr import EngineUnavailable, fuse, make_engine, read_image
from ocr.reader import DEFAULT_MIN_CONFIDENCE


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
        "--config", default=None, help="site configuration (for ocr.min_confidence)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    min_confidence = DEFAULT_MIN_CONFIDENCE
    engine_name = "tesseract"
    if args.config:
        try:
            site = load_config(args.config)
        except ConfigError as exc:
            print(f"{exc.source}: invalid configuration, {len(exc.issues)} error(s)")
            return 2
        min_confidence, engine_name = site.ocr.min_confidence, site.ocr.engine
    try:
        engine = make_engine(engine_name)
    except EngineUnavailable as exc:
        print(f"error: {exc}")
        return 2
    reads = [
        read_image(path, camera=args.camera, engine=engine, min_confidence=min_confidence)
        for path in args.images
    ]
    if args.visit:
        containers = [
            {**asdict(c), "accepted": c.confidence >= min_confidence} for c in fuse(reads)
        ]
        visit: dict[str, Any] = {
            "containers": containers,
            "images": [_read_dict(r) for r in reads],
        }
        if args.json:
            print(json.dumps(visit))
        else:
            for c in containers:
                state = "" if c["accepted"] else "  (below threshold: clerk)"
                print(
                    f"{c['container_number']} {c['size_type'] or '----'} "
                    f"{c['confidence']:.2f} from {len(c['images'])} image(s){state}"
                )
            if not containers:
                print("no container number read")
    else:
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
