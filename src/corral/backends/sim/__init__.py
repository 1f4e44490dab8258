"""The simulated backend ``sim``: a real backend behind the contract that runs no processes.

What it simulates: a scheduler whose jobs queue, run, sometimes fail or get requeued, and end,
each job's course a pure function of (attempt uuid, ``seed``, options): ``sha256(seed:uuid)``
gives the uniform numbers behind its queue time, run time, exit code and requeue. Time is the
wall clock, so a job's state is a function of when it was accepted, now, and when (if ever) it
was cancelled. The same behaviour comes in two modes: ``sim`` (``SimBackend``, async, file I/O in
``asyncio.to_thread``) and ``sim-blocking`` (``BlockingSimBackend``, plain functions that the
core runs in the instance's own limiter of ``threads`` threads).

Options (``[backends.NAME]``, checked: finite, in range, strict types)::

    seed = 0                  another seed, other jobs for the same uuids
    queue_time = 0.1          mean seconds queued (each job waits 0.5 to 1.5 times it)
    run_time = [0.2, 0.5]     run time range in seconds (one number: a fixed time)
    fail_rate = 0.0           share of jobs that exit with code 1
    requeue_rate = 0.0        share of jobs sent back to the queue once, 20-80 % into their run
                              (seen as ``submitted`` with ``requeue=True``), then run again
    status_latency = 0.0      seconds each status call takes
    status_failure_rate = 0.0 share of status calls that raise ``TransientBackendError``
                              (which ones: a function of the seed and the call's number)
    unavailable = ""          if set: the backend cannot start (``BackendUnavailable``, this text)
    threads = 4               sim-blocking only: its limiter's size

A job's ``backend_options``: ``run_time`` (seconds, overrides the drawn one), ``exit_code``
(0-255, overrides the drawn one), ``refuse`` (submit refuses the job with this reason). A
walltime in the job's resources ends a longer job as "walltime exceeded".

On disk (see ``store``): ``<work_dir>/sim/<name>/jobs.jsonl`` (accepted jobs and cancels) and
``calls.jsonl`` (one line per verb call), append-only, written before a verb returns, so a
restarted monitor finds its jobs (``reconcile`` by label, ``status`` as before) and the counts
stay exact across a SIGKILL. ``sim_state(work_dir, name)`` reads them without a backend.

What each verb costs, whatever the number of jobs (file I/O in a thread: ``asyncio.to_thread``
for ``sim``, the limiter's thread for ``sim-blocking``): every call appends one line to the calls
log; ``submit`` one more append for all the new jobs (native ids ``sim-1``, ``sim-2``, ... from a
counter kept in the log; a uuid it accepted before gets its native id again, nothing is
duplicated); ``status`` sleeps ``status_latency``, then O(n) arithmetic (no per-job I/O; each
job's plan is drawn once per instance); ``cancel`` one append for the batch; ``reconcile`` a
look-up by label per attempt; ``fetch_outputs`` writes ``stdout`` ("sim job <uuid>") into the
attempt dir if it exists. A file that cannot be written (a full disk) makes the call a
``TransientBackendError``; a directory that cannot be created makes ``start``
``BackendUnavailable``.

What status answers, for every attempt asked about: ``submitted`` while queued, ``running``,
then ``Observation.ended`` (``completing`` with the exit code, which the monitor judges), or
``killed`` once cancelled before the end; ``unknown`` for a uuid it never accepted.
"""

from corral.backends.sim.backend import BlockingSimBackend as BlockingSimBackend
from corral.backends.sim.backend import SimBackend as SimBackend
from corral.backends.sim.backend import SimCore as SimCore
from corral.backends.sim.model import BlockingSimOptions as BlockingSimOptions
from corral.backends.sim.model import Plan as Plan
from corral.backends.sim.model import SimJobOptions as SimJobOptions
from corral.backends.sim.model import SimOptions as SimOptions
from corral.backends.sim.model import observe as observe
from corral.backends.sim.model import plan as plan
from corral.backends.sim.model import status_fails as status_fails
from corral.backends.sim.store import SimJob as SimJob
from corral.backends.sim.store import SimState as SimState
from corral.backends.sim.store import sim_dir as sim_dir
from corral.backends.sim.store import sim_state as sim_state
