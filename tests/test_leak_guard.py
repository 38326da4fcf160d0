"""The suite's leak guard (tests/conftest.py): a test that leaves a task or a thread running fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

LEAKY = '''
import asyncio, threading

async def test_leaves_a_task():
    asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="forgotten-sleeper")

def test_leaves_a_thread():
    stop = threading.Event()
    threading.Thread(target=stop.wait, args=(5,), name="forgotten-thread", daemon=True).start()

async def test_cleans_up():
    task = asyncio.get_running_loop().create_task(asyncio.sleep(3600))
    task.cancel()
'''


def test_leaked_task_and_thread_fail_their_test_by_name(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    out = done.stdout + done.stderr
    assert "3 passed, 2 errors" in out, out  # the errors are the two leaks, at teardown
    assert "forgotten-sleeper" in out and "forgotten-thread" in out, out
