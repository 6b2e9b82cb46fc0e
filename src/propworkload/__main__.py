"""``python -m propworkload``: the same as the ``propworkload`` command."""

from ._cli import cli_main

if __name__ == "__main__":
    cli_main()
