"""The README's quickstart: every line is a valid command, and every step states its measured time."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from quickstart import quickstart_commands  # noqa: E402

from archsearch.cli.main import build_parser  # noqa: E402


def test_quickstart_lines_parse_as_commands():
    cmds = quickstart_commands()
    assert [c.split()[:2] for c in cmds][:1] == [["archsearch", "solve"]]
    assert {"solve", "show", "validate", "results", "report"} <= {c.split()[1] for c in cmds}
    parser = build_parser()
    for cmd in cmds:
        argv = shlex.split(cmd)
        assert argv[0] == "archsearch"
        parser.parse_args(argv[1:])  # argparse exits (SystemExit) on a bad line


def test_quickstart_steps_state_their_time():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("## Quickstart"):]
    block = block[block.index("```bash"): block.index("```", block.index("```bash") + 7)]
    lines = [ln for ln in block.splitlines()[1:] if ln.strip()]
    assert lines and all(re.search(r"#\s*~?\d+(\.\d+)? (s|min)\b", ln) for ln in lines), lines
