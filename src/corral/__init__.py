"""corral: define a job once, run it anywhere, and let one asyncio monitor watch thousands.

Importing corral does no work: settings, the registry and the monitor start with a session.
"""

__version__ = "0.1.0"

from corral.api import Session as Session
from corral.config import Settings as Settings
from corral.config import load_settings as load_settings
from corral.errors import CorralError as CorralError
from corral.records import JobId as JobId
from corral.records import JobRecord as JobRecord
from corral.registry import Selection as Selection
from corral.session import AsyncSession as AsyncSession
from corral.spec import JobSpec as JobSpec
from corral.states import JobState as JobState
