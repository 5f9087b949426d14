"""Draw a result JSON on its image and save the overlay PNG.

    python -m tools.visualize out/001.json ../shared/data/ceph/isbi2015_640x800/images/001.png -o 001.png

The JSON may be the result `data`, a Task, a REST envelope or a callback body.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dentalai.overlay import load_image, render_png


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.visualize", description=__doc__.split("\n\n")[0])
    parser.add_argument("result", type=Path, help="result JSON file")
    parser.add_argument(
        "image", type=Path, help="the image the result is for (PNG, JPEG, TIFF, BMP or DICOM)"
    )
    parser.add_argument(
        "-o", "--out", type=Path, help="output PNG (default: <result stem>.overlay.png beside it)"
    )
    args = parser.parse_args(argv)
    out = args.out or args.result.with_suffix(".overlay.png")
    try:
        png = render_png(load_image(args.image), json.loads(args.result.read_text()))
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out.write_bytes(png)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
