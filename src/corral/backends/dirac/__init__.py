"""The DIRAC backend over DiracX's REST API (``pip install 'corral[dirac]'``: httpx).

``DiracBackend`` (in ``backend``) does the I/O; ``jdl`` renders job specs as JDL, ``observe``
reads DiracX's answers into observations, ``auth`` keeps the tokens of ``dirac login``'s
credentials file fresh, ``client`` makes the HTTP calls and ``payload`` builds and unpacks
sandboxes. ``jdl`` and ``observe`` are pure.
"""

from corral.backends.dirac.backend import DiracBackend as DiracBackend

__all__ = ["DiracBackend"]
