"""Stop signals arriving during an import wait for it to finish, then unwind (soundsmith.stopping)."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import soundsmith

SRC = str(Path(soundsmith.__file__).parents[1])

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {src!r})
    sys.path.insert(0, {folder!r})
    from soundsmith import stopping
    stopping.install({{signal.SIGTERM: stopping.unwinding(lambda signum: SystemExit(128 + signum))}})
    try:
        import slow_module  # the signal comes in the middle of its body
        time.sleep(5)               # ... and is delivered again once the import is over
    except SystemExit as stop:
        print("import finished:", sys.modules["slow_module"].finished, "then exit", stop.code)
        raise
    print("the signal was lost")
""")

SLOW_MODULE = textwrap.dedent("""
    import os, signal, time
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # ordinary bytecode: a handler raising here would abort the import
        pass
    finished = True
""")


def test_a_stop_during_an_import_lands_after_it_and_exits_by_the_signal(tmp_path):
    (tmp_path / "slow_module.py").write_text(SLOW_MODULE)
    child = subprocess.run([sys.executable, "-c", CHILD.format(src=SRC, folder=str(tmp_path))],
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == 128 + signal.SIGTERM, child.stderr
    assert "import finished: True then exit 143" in child.stdout
    assert "Traceback" not in child.stderr


def test_outside_an_import_the_stop_unwinds_at_once(tmp_path):
    code = textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {SRC!r})
        from soundsmith import stopping
        stopping.install({{signal.SIGINT: stopping.unwinding(lambda signum: KeyboardInterrupt())}})
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            print("unwound")
    """)
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert child.stdout.strip() == "unwound", child.stderr
