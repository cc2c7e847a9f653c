"""HTML reports of runs: plots (matplotlib, inline SVG) and tables rendered with Jinja2 from
:mod:`archsearch.results` data (``archsearch report RUN_DIR...``)."""

from archsearch.report.render import render_report, write_front_png, write_report

__all__ = ["render_report", "write_front_png", "write_report"]
