"""``corral shell``: IPython with a session and the API preloaded (the Ganga habit)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from corral.cli.common import state
from corral.cli.errors import Unavailable

if TYPE_CHECKING:
    from corral.api import Session

BANNER = """corral {version} shell: registry {registry}
  s / session     the Session (submit, get, select, subjobs, history, wait, peek, kill,
                  resubmit, remove, copy, on_transition)
  JobSpec, JobState, JobId, Selection, corral
  e.g.  j = s.submit({{"command": ["echo", "hi"]}}); s.wait(j); print(s.peek(j))
        s.select(states=[JobState.FAILED])
"""


def shell(
    ctx: typer.Context,
    command: Annotated[
        str | None,
        typer.Option(
            "--command",
            "-c",
            metavar="CODE",
            help="Run CODE in the shell's namespace and exit.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """An IPython shell with `s` (a Session on this registry) and the API preloaded."""
    try:
        import IPython
    except ImportError as exc:
        raise Unavailable("the shell needs IPython: pip install 'corral[shell]'") from exc
    import corral
    from corral import JobId, JobSpec, JobState, Selection, Session

    settings = state(ctx).settings()
    with Session(settings) as session:
        namespace: dict[str, Any] = {
            "s": session,
            "session": session,
            "corral": corral,
            "JobSpec": JobSpec,
            "JobState": JobState,
            "JobId": JobId,
            "Selection": Selection,
        }
        if command is not None:
            exec(compile(command, "<corral shell -c>", "exec"), namespace)  # the user's own code
            return
        _interact(IPython, session, namespace)


def _interact(ipython: Any, session: Session, namespace: dict[str, Any]) -> None:
    from traitlets.config import Config

    import corral

    config = Config()
    config.TerminalInteractiveShell.banner1 = BANNER.format(
        version=corral.__version__, registry=session.settings.registry
    )
    config.TerminalIPythonApp.display_banner = True
    config.TerminalInteractiveShell.confirm_exit = False
    ipython.start_ipython(argv=[], user_ns=namespace, config=config)
