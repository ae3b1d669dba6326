"""The `siegeflow` console script: a warm runner first (`cli.forkserver`), else this process.

Kept tiny on purpose: a command served by the runner imports nothing but this and the
standard library here (typer, rich and Prefect are already loaded in the runner).
"""

from __future__ import annotations

import sys


def main() -> None:
    from cli.forkserver import forward

    code = forward(sys.argv)
    if code is not None:
        raise SystemExit(code)
    from cli.main import main as in_process

    in_process()


if __name__ == "__main__":
    main()
