"""The Slurm backend: sweeps as job arrays, one scheduler call per monitor cycle.

``SlurmBackend`` (in ``backend``) does the I/O; ``render`` plans batches and renders the batch
script, ``parse`` reads Slurm's output, ``observe`` turns it into observations and ``runfiles``
reads what the batch wrapper leaves in each attempt dir. All but ``backend`` and ``commands``
are pure.
"""

from corral.backends.slurm.backend import SlurmBackend as SlurmBackend

__all__ = ["SlurmBackend"]
