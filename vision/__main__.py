"""``python -m vision annotate …``: see :mod:`vision.annotate`."""

from __future__ import annotations

import sys

from vision import annotate


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "annotate":
        print("usage: python -m vision annotate INPUT [--out OUTPUT] [--json PATH]",  # noqa: T201
              file=sys.stderr)  # fmt: skip
        return 2
    return annotate.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
