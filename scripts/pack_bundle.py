"""Rewrite an exported bundle's text graph to take a report's sentences packed in one row
(`lesionloc-export --text-layout packed`, the default since packed text graphs), without the
checkpoint it came from: `python scripts/pack_bundle.py BUNDLE [--out NEW]`. The packed
graph is checked against the bundle's own padded one within the parity thresholds of its
precision and the figures are recorded in the card (`parity.packed_from_padded`); a bundle
that cannot be packed is left as it is, with the reason. How the shipped demo bundle was
packed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lesionloc_runtime.errors import LesionlocError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--out", type=Path, default=None,
                        help="write the packed bundle here (default: replace BUNDLE)")
    args = parser.parse_args()
    from lesionloc_export.repack import pack_bundle

    try:
        record = pack_bundle(args.bundle, args.out or args.bundle)
    except LesionlocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
