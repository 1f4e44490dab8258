"""The HTCondor backend, on the ``htcondor2`` bindings (``pip install 'corral[condor]'``).

The bindings block, so this is a ``BlockingBackend``: every call runs in the instance's own
thread limiter, never on the event loop. Modules: ``options`` (the checked models), ``render``
(attempts -> one submit description with itemdata, constraints; pure), ``observe`` (job ads ->
observations, hold codes; pure), ``backend`` (the calls).
"""

from corral.backends.condor.backend import CondorBackend as CondorBackend
