"""The detached monitor sees the paths its starter saw, and never holds the starter's directory.

Relative paths in a config file are relative to the file; from the environment, to the
directory the settings were loaded in. The daemon leaves for ``/`` once it has its settings,
so a directory a user submitted from can be unmounted while it runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral.config import load_settings
from corral.daemon import ensure_daemon, leave_cwd
from corral.lock import holder
from tests.cli.conftest import IDLE_EXIT, run_corral

CONFIG = f'idle_exit = {IDLE_EXIT}\nwork_dir = "jobs-here"\nregistry = "reg/registry.db"\n'


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    """``conf`` holds a config file with relative paths; ``a`` an input file; ``b`` nothing."""
    found = {name: tmp_path / name for name in ("conf", "a", "b")}
    for path in found.values():
        path.mkdir()
    (found["conf"] / "config.toml").write_text(CONFIG)
    (found["a"] / "in.txt").write_text("hello from a\n")
    return found


def _daemon_cwd(home: Path, lock: Path | None = None) -> str:
    pid = holder(lock or home / "monitor.lock")
    assert pid is not None
    return os.readlink(f"/proc/{pid}/cwd")


def test_a_daemon_started_from_another_dir_sees_the_config_files_paths(
    cli_home: Path, dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"CORRAL_CONFIG": str(dirs["conf"] / "config.toml"), "CORRAL_AUTOSTART": "false"}
    submit = run_corral(
        cli_home, "submit", "-q", "-i", "in.txt", "--", "cat", "in.txt", env=env, cwd=dirs["a"]
    )
    assert submit.code == 0, submit
    monkeypatch.setenv("CORRAL_CONFIG", env["CORRAL_CONFIG"])
    monkeypatch.chdir(dirs["b"])  # the daemon is started from b, which holds no config
    settings = load_settings()
    assert ensure_daemon(settings) is not None
    assert _daemon_cwd(cli_home, settings.lock_path) == "/"  # (the lock of conf/reg/registry.db)
    waited = run_corral(cli_home, "wait", "1", "--timeout", "30", env=env, cwd=dirs["b"])
    assert waited.code == 0, waited
    assert run_corral(cli_home, "peek", "1", env=env, cwd=dirs["b"]).out == "hello from a\n"
    assert (dirs["conf"] / "reg" / "registry.db").is_file()
    assert (dirs["conf"] / "jobs-here").is_dir()
    assert not any(p.exists() for d in ("a", "b") for p in (dirs[d] / "reg", dirs[d] / "jobs-here"))


def test_the_daemon_leaves_the_submitters_dir_and_runs_relative_inputs(
    cli_home: Path, dirs: dict[str, Path]
) -> None:
    submit = run_corral(
        cli_home, "submit", "-q", "-i", "in.txt", "--", "sh", "-c", "sleep 1; cat in.txt",
        cwd=dirs["a"],
    )  # fmt: skip
    assert submit.code == 0, submit
    assert _daemon_cwd(cli_home) == "/"  # not dirs["a"]: an umount of its fs would fail
    waited = run_corral(cli_home, "wait", "1", "--timeout", "30", cwd=dirs["b"])
    assert waited.code == 0, waited
    assert run_corral(cli_home, "peek", "1", cwd=dirs["b"]).out == "hello from a\n"


def test_env_paths_are_relative_to_where_the_starter_loaded_its_settings(
    cli_home: Path, dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The starter moved to b after loading its settings in a: the daemon still uses a/w."""
    env = {"CORRAL_WORK_DIR": "w", "CORRAL_AUTOSTART": "false"}
    submit = run_corral(cli_home, "submit", "-q", "--", "echo", "ok", env=env, cwd=dirs["a"])
    assert submit.code == 0, submit
    monkeypatch.chdir(dirs["a"])
    monkeypatch.setenv("CORRAL_WORK_DIR", "w")
    settings = load_settings()
    monkeypatch.chdir(dirs["b"])
    assert ensure_daemon(settings) is not None
    assert _daemon_cwd(cli_home) == "/"
    waited = run_corral(cli_home, "wait", "1", "--timeout", "30", env=env, cwd=dirs["a"])
    assert waited.code == 0, waited
    assert run_corral(cli_home, "peek", "1", env=env, cwd=dirs["a"]).out == "ok\n"
    assert (dirs["a"] / "w").is_dir() and not (dirs["b"] / "w").exists()


def test_modules_in_the_submitters_dir_do_not_shadow_the_daemons(
    cli_home: Path, dirs: dict[str, Path]
) -> None:
    """The daemon starts in the submitter's directory (``python -P``: not on its sys.path)."""
    (dirs["a"] / "corral").mkdir()  # (a user's checkout of something called corral)
    (dirs["a"] / "corral" / "__init__.py").write_text("raise ImportError('shadowed by a')\n")
    env = dict(os.environ, CORRAL_HOME=str(cli_home))
    submit = subprocess.run(
        [sys.executable, "-P", "-m", "corral.cli", "submit", "-q", "--", "echo", "ok"],
        cwd=dirs["a"], env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert submit.returncode == 0, submit
    assert _daemon_cwd(cli_home) == "/", (cli_home / "monitor.log").read_text()[-2000:]
    waited = run_corral(cli_home, "wait", "1", "--timeout", "30", cwd=dirs["b"])
    assert waited.code == 0, (waited, (cli_home / "monitor.log").read_text()[-2000:])


def test_leaving_the_dir_keeps_what_path_variables_name(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(dirs["a"])
    monkeypatch.setenv("HOME", str(dirs["b"]))
    monkeypatch.setenv("X509_USER_PROXY", "proxy")
    monkeypatch.setenv("DIRACX_CREDENTIALS_PATH", "~/creds.json")
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/slurm.conf")
    monkeypatch.setenv("CONDOR_CONFIG", "ONLY_ENV")
    monkeypatch.setenv("PATH", f"bin:/usr/bin::{dirs['b']}")
    leave_cwd()
    assert os.getcwd() == "/"
    assert os.environ["X509_USER_PROXY"] == str(dirs["a"] / "proxy")
    assert os.environ["DIRACX_CREDENTIALS_PATH"] == str(dirs["b"] / "creds.json")
    assert os.environ["SLURM_CONF"] == "/etc/slurm/slurm.conf"
    assert os.environ["CONDOR_CONFIG"] == "ONLY_ENV"
    assert os.environ["PATH"] == f"{dirs['a'] / 'bin'}:/usr/bin:{dirs['a']}/:{dirs['b']}"


def test_dry_run_shows_the_absolute_paths_a_submit_stores(
    cli_home: Path, dirs: dict[str, Path]
) -> None:
    """A job file's relative paths are relative to the file, the flags' to the working dir
    (here one with a colon in its name: ``-i in.txt`` must not read as SRC:DEST)."""
    here = dirs["b"] / "x:y"
    (here / "sub").mkdir(parents=True)
    for name in ("data.txt", "other.txt"):
        (here / "sub" / name).write_text(name)
    (here / "in.txt").write_text("in")
    (here / "sub" / "job.toml").write_text(
        'command = ["true"]\ninput_files = ["data.txt", "other.txt:renamed.txt"]\n'
        'working_dir = "wd"\n'
    )
    flags = ["submit", "sub/job.toml", "-i", "in.txt", "-i", "in.txt:copy.txt", "--json"]
    dry = run_corral(cli_home, *flags, "--dry-run", cwd=here)
    assert dry.code == 0, dry
    spec = dry.json()["spec"]
    assert spec["input_files"] == [
        f"{here}/sub/data.txt:data.txt",
        f"{here}/sub/other.txt:renamed.txt",
        f"{here}/in.txt:in.txt",
        f"{here}/in.txt:copy.txt",
    ]
    assert spec["working_dir"] == f"{here}/sub/wd"
    flagged = run_corral(cli_home, *flags, "--dry-run", "--workdir", "w", cwd=here).json()
    assert flagged["spec"]["working_dir"] == f"{here}/w"
    submitted = run_corral(cli_home, *flags, "--workdir", "~/w", env={"HOME": str(here)}, cwd=here)
    assert submitted.code == 0, submitted
    stored = run_corral(cli_home, "show", "1", "--json").json()["spec"]
    assert stored["input_files"] == spec["input_files"]
    assert stored["working_dir"] == f"{here}/w"


def test_the_daemon_gets_what_the_starters_flags_set(cli_home: Path, tmp_path: Path) -> None:
    """``--set`` reaches the daemon the command starts: before, it opened the default
    registry, and a job stored in another one waited for ever. And a registry set apart from
    the home's has a monitor of its own: its job does not wait for the home's monitor."""
    busy = run_corral(cli_home, "submit", "-q", "--", "sleep", "60")  # the home's monitor: busy
    assert busy.code == 0, busy
    registry = tmp_path / "elsewhere" / "r.db"
    flags = ["--set", f"registry={registry}", "--set", "backends.local.max_cpus=1"]
    flags += ["--set", "flush_window=0.05", "--set", f"idle_exit={IDLE_EXIT}"]
    done = run_corral(cli_home, *flags, "submit", "--wait", "--timeout", "30", "--", "echo", "hi")
    assert done.code == 0, done
    assert registry.is_file()
    lock = load_settings({"registry": registry}, {"CORRAL_HOME": str(cli_home)}).lock_path
    assert lock.parent == cli_home and lock.name.startswith("monitor-")
    pid = holder(lock)
    if pid is not None:  # (still running: it was started with what the flags set)
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"CORRAL_REGISTRY={registry}".encode() in environ
        assert b"CORRAL_BACKENDS__LOCAL__MAX_CPUS=1" in environ
    assert run_corral(cli_home, "kill", "1").code == 0
