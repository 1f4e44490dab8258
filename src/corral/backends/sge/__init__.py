"""The Grid Engine backend (Son of Grid Engine 8.1.9): sweeps as array jobs, one ``qstat`` per
monitor cycle.

``SgeBackend`` (in ``backend``) does the I/O; ``render`` plans batches and renders the job
script, ``parse`` reads Grid Engine's output and ``observe`` turns it into observations, all
pure. The batch pieces shared with Slurm are in ``corral.backends.batch``.
"""

from corral.backends.sge.backend import SgeBackend as SgeBackend

__all__ = ["SgeBackend"]
