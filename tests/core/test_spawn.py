"""corral.spawn: detached processes started by glibc's posix_spawn (GIL released) or,
where that cannot load, by os.posix_spawn; both must behave alike."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from corral import spawn


@pytest.fixture(params=["glibc", "os"])
def spawner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> spawn.Spawner:
    if request.param == "os":
        monkeypatch.setattr(spawn, "_glibc", lambda: None)
    elif spawn._glibc() is None:
        pytest.skip("no glibc here")
    fd = os.open(os.devnull, os.O_RDWR)
    request.addfinalizer(lambda: os.close(fd))
    return spawn.Spawner({0: fd, 1: fd, 2: fd})


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_spawned_process_leads_its_own_session_with_the_env_given(
    spawner: spawn.Spawner, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    # stdin is the fd given (/dev/null here): read gets end-of-file at once
    script = f'echo "$$ $(ps -o sid= -p $$) $FOO" > {out}; read x || exit 3'
    with spawner:
        pid = spawner.spawn(["/bin/sh", "-c", script], {"FOO": "bar é", "PATH": "/usr/bin:/bin"})
    assert _wait(pid) == 3
    own, sid, value = out.read_text().split(maxsplit=2)
    assert int(own) == pid and int(sid) == pid  # setsid: a session of its own
    assert value.strip() == "bar é"
    assert os.getsid(0) != pid


def test_exit_codes_come_back_and_a_missing_program_is_an_oserror(spawner: spawn.Spawner) -> None:
    with spawner:
        assert _wait(spawner.spawn(["/bin/sh", "-c", "exit 7"], {})) == 7
        with pytest.raises(OSError) as info:
            spawner.spawn(["/nonexistent/program"], {})
    assert info.value.errno == 2


def test_many_spawns_reuse_one_set_of_actions(spawner: spawn.Spawner) -> None:
    with spawner:
        pids = [spawner.spawn(["/bin/true"], {}) for _ in range(50)]
    assert [_wait(p) for p in pids] == [0] * 50


def _ignored(status: str) -> int:
    (line,) = [x for x in status.splitlines() if x.startswith("SigIgn:")]
    return int(line.split()[1], 16)


def test_signals_python_ignores_are_default_again(spawner: spawn.Spawner, tmp_path: Path) -> None:
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # (Python's own start-up)
    out = tmp_path / "status"
    with spawner:
        pid = spawner.spawn(["/bin/sh", "-c", f"cat /proc/self/status > {out}"], {})
    assert _wait(pid) == 0
    ignored = _ignored(out.read_text())
    for number in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (number - 1)), f"signal {number} is ignored in the child"


def test_no_fd_of_ours_but_the_ones_given_reaches_the_child(
    spawner: spawn.Spawner, tmp_path: Path
) -> None:
    """An fd the caller inherited (not close-on-exec: a CI runner's pipe) is not passed on."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    out = tmp_path / "fds"
    try:
        with spawner:
            pid = spawner.spawn(["/bin/sh", "-c", f"ls /proc/$$/fd > {out}"], {})
        assert _wait(pid) == 0
    finally:
        os.close(read_end)
        os.close(write_end)
    fds = {int(name) for name in out.read_text().split()}
    assert write_end not in fds
    assert fds <= {0, 1, 2, 3, 10}  # (3 and 10: what ls and sh open themselves)


def test_only_fds_0_1_and_2_can_be_given() -> None:
    with pytest.raises(ValueError, match="only fds 0, 1 and 2"):
        spawn.Spawner({3: 0})
