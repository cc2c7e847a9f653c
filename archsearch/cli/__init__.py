"""The command line (``archsearch``); nothing imports it."""

from archsearch.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
