"""`dfc check` as a process: editors run it on every save, so its start-up time counts (SPEC
§9). It loads only what checking needs (the plan stage, the code catalogue, the store and the
runtime cost tens of milliseconds to import), it pauses cyclic garbage collection while
checking, and only then, and it spares the interpreter's collections at exit."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dfc.cli.main import main

LATER_STAGES = ("dfc.plan", "dfc.catalogue", "dfc.store", "dfc.runtime", "psycopg")

PROGRAM = """
import sys
from dfc.cli.main import main
try:
    main(["--no-color", "check", sys.argv[1]])
except SystemExit as e:
    assert e.code == 0, e.code
print("imported:", *sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[2:]))))
"""


def test_dfc_check_does_not_import_the_stages_after_the_checker(tmp_path: Path) -> None:
    flow = tmp_path / "flow.df"
    flow.write_text("df.start('SELECT 1 AS n' |=> 'r' ~> 'SELECT $r.n', 'flow');\n")
    # A fresh interpreter: this one has imported everything already.
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(flow), *LATER_STAGES],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines()[-2:] == ["checked 1 file: no problems", "imported:"]


def test_dfc_check_collects_cyclic_garbage_again_once_it_has_checked(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.df", tmp_path / "bad.df"
    good.write_text("df.start('SELECT 1', 'good');\n")
    bad.write_text("df.start('SELECT $nowhere', 'bad');\n")
    assert gc.isenabled()
    for flow, code in ((good, 0), (bad, 1)):
        assert CliRunner().invoke(main, ["--no-color", "check", str(flow)]).exit_code == code
        assert gc.isenabled()


AT_EXIT = """
import atexit, gc, sys
# Registered first, so it runs after the handlers the command registers.
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
from dfc.cli.main import main
main(["--no-color", "check", sys.argv[1]])
"""


def test_the_objects_left_at_exit_are_frozen_out_of_the_last_collections(tmp_path: Path) -> None:
    flow = tmp_path / "flow.df"
    flow.write_text("df.start('SELECT 1', 'flow');\n")
    result = subprocess.run(
        [sys.executable, "-c", AT_EXIT, str(flow)], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines()[-1] == "frozen at exit: True"
