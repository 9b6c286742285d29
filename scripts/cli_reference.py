"""Write docs/cli.md from the ``--help`` of every ``hpsearch`` command.

    python scripts/cli_reference.py            # (re)write docs/cli.md
    python scripts/cli_reference.py --check    # exit 1 when docs/cli.md differs from --help
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpsearch.cli_docs import render_cli_reference

OUT = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 when the file differs from --help")
    ap.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT}")
    args = ap.parse_args(argv)
    text = render_cli_reference()
    current = args.out.read_text() if args.out.exists() else None
    if args.check:
        if current == text:
            print(f"{args.out}: up to date")
            return 0
        print(f"{args.out} differs from the CLI's --help: run python scripts/cli_reference.py",
              file=sys.stderr)
        return 1
    args.out.write_text(text)
    print(f"wrote {args.out}" + (" (unchanged)" if current == text else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
