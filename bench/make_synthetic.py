"""Write a set of synthetic gate-camera pictures with their labels, for bench/ocr_accuracy.py.

    .venv/bin/python bench/make_synthetic.py OUTDIR --count 500 --seed 1

Pictures come in truck passes of five cameras like the real portal (AH, AS, LF, RF, LB), one
or two containers per truck. `labels.csv` has the columns of the real photos' labels
(file, container_number, camera, code_layout, view, capture); `truth.csv` adds what was drawn
(size/type, font, paint, marking region, effects) for looking into failures.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from hwsim.images import (  # noqa: E402
    LABEL_COLUMNS,
    SIZE_TYPES,
    encode_jpeg,
    random_container_number,
    random_spec,
    render,
)

# camera, which container it sees, the views it may have (as in the real portal's photos)
PORTAL = (
    ("AH", "front", ("front_end_wall_from_above", "door_end_from_above")),
    ("AS", "rear", ("door_end_from_above",)),
    ("LF", "front", ("end_wall_oblique_side_camera",)),
    ("RF", "front", ("end_wall_oblique_side_camera",)),
    ("LB", "rear", ("end_wall_oblique_side_camera",)),
)

TRUTH_COLUMNS = (
    "file", "container_number", "size_type", "code_layout", "view", "font", "paint",
    "boxed_check_digit", "region", "jpeg_quality", "effects",
)


@dataclass(frozen=True)
class Job:
    index: int
    capture: str
    camera: str
    view: str
    container_number: str
    size_type: str
    seed: int
    difficulty: float
    jpeg_quality: int


def plan(count: int, seed: int, difficulty: float) -> list[Job]:
    """Decide every picture up front from the seed, so the set does not depend on workers."""
    rng = np.random.default_rng(seed)
    jobs: list[Job] = []
    capture_index = 0
    while len(jobs) < count:
        capture = f"syn{seed:04d}{capture_index:05d}"
        two_twenties = rng.random() < 0.4
        front = random_container_number(rng)
        rear = random_container_number(rng) if two_twenties else front
        size_types = {
            front: str(rng.choice(SIZE_TYPES[:1] if two_twenties else SIZE_TYPES)),
            rear: str(rng.choice(SIZE_TYPES[:1] if two_twenties else SIZE_TYPES)),
        }
        for camera, sees, views in PORTAL:
            if len(jobs) == count:
                break
            number = front if sees == "front" else rear
            jobs.append(
                Job(
                    index=len(jobs),
                    capture=capture,
                    camera=camera,
                    view=str(rng.choice(views)),
                    container_number=number,
                    size_type=size_types[number],
                    seed=int(rng.integers(0, 2**31)),
                    difficulty=difficulty,
                    jpeg_quality=int(rng.integers(int(92 - 40 * difficulty), 95)),
                )
            )
        capture_index += 1
    return jobs


def make_one(job: Job, outdir: Path) -> dict[str, str]:
    spec = random_spec(
        job.seed,
        container_number=job.container_number,
        size_type=job.size_type,
        view=job.view,
        camera=job.camera,
        difficulty=job.difficulty,
    )
    picture = render(spec)
    name = f"{job.capture}-{job.camera}-{job.index:05d}.jpg"
    (outdir / name).write_bytes(encode_jpeg(picture.image, job.jpeg_quality))
    return {
        "file": name,
        "container_number": job.container_number,
        "camera": job.camera,
        "code_layout": spec.layout,
        "view": spec.view,
        "capture": job.capture,
        "size_type": spec.size_type,
        "font": spec.font,
        "paint": spec.paint,
        "boxed_check_digit": str(spec.boxed_check_digit).lower(),
        "region": " ".join(str(v) for v in picture.region),
        "jpeg_quality": str(job.jpeg_quality),
        "effects": " ".join(picture.effects),
    }


def _make_one_star(args: tuple[Job, Path]) -> dict[str, str]:
    return make_one(*args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, help="folder to write the pictures and labels.csv")
    parser.add_argument("--count", type=int, default=500, help="number of pictures (500)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the whole set (1)")
    parser.add_argument(
        "--difficulty", type=float, default=0.6,
        help="0 mild .. 1 worst: glare, shadow, blur, noise, occlusion, JPEG loss (0.6)",
    )
    parser.add_argument("--workers", type=int, default=1, help="rendering processes (1)")
    args = parser.parse_args(argv)
    if args.count < 1 or not 0 <= args.difficulty <= 1 or args.workers < 1:
        parser.error("--count >= 1, --difficulty in [0, 1] and --workers >= 1 please")

    args.outdir.mkdir(parents=True, exist_ok=True)
    jobs = plan(args.count, args.seed, args.difficulty)
    started = time.perf_counter()
    if args.workers == 1:
        rows = [make_one(job, args.outdir) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            rows = list(pool.map(_make_one_star, [(job, args.outdir) for job in jobs]))
    elapsed = time.perf_counter() - started

    with (args.outdir / "labels.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, LABEL_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with (args.outdir / "truth.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, TRUTH_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    layouts: dict[str, int] = {}
    for row in rows:
        layouts[row["code_layout"]] = layouts.get(row["code_layout"], 0) + 1
    print(f"wrote {len(rows)} pictures to {args.outdir} in {elapsed:.1f} s "
          f"({elapsed / len(rows) * 1000:.0f} ms each, {args.workers} worker(s))")
    print("layouts: " + ", ".join(f"{k} {v}" for k, v in sorted(layouts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
