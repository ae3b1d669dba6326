"""The `siegeflow` console script."""

from __future__ import annotations


def main() -> None:
    from cli.main import main as in_process

    in_process()


if __name__ == "__main__":
    main()
