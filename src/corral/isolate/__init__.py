"""Client libraries that must not share corral's interpreter, run in workers of their own.

A ``Pool`` keeps ``workers`` long-lived processes of ANOTHER Python (``Launch.python``, after an
optional environment script such as ``diracos/diracosrc``, with extra environment), each in its
own process group and scratch cwd, running ``worker.py`` over a module of the foreign side. The
module declares what may be called (``CORRAL_METHODS``: thread-safe, or exclusive: one at a time
per process); the host declares each method's timeout and whether a retry is safe (``Method``).

Protocol: JSON lines over the worker's stdin and stdout (see ``worker``), request ids, answers
resolved by id as they arrive (no polling), errors as data (``RemoteError``), no pickle, no eval,
no exec of received text. corral's own interpreter never imports the foreign library. Worker
stderr goes to the ``corral.isolate.NAME`` logger (the monitor's log). See ``pool`` for restarts,
back-off, timeouts and recycling.
"""

from corral.errors import CallTimedOut as CallTimedOut
from corral.errors import RemoteError as RemoteError
from corral.errors import WorkerDied as WorkerDied
from corral.isolate.pool import Method as Method
from corral.isolate.pool import Pool as Pool
from corral.isolate.pool import PoolSpec as PoolSpec
from corral.isolate.process import Launch as Launch

__all__ = ["CallTimedOut", "Launch", "Method", "Pool", "PoolSpec", "RemoteError", "WorkerDied"]
