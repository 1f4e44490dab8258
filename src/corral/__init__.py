"""corral: define a job once, run it anywhere, and let one asyncio monitor watch thousands.

Importing corral does no work: settings, the registry and the monitor start with a session.
"""

__version__ = "0.1.0"

from corral.api import Session as Session  # noqa: E402
from corral.config import Settings as Settings  # noqa: E402
from corral.config import load_settings as load_settings  # noqa: E402
from corral.errors import CorralError as CorralError  # noqa: E402
from corral.records import JobId as JobId  # noqa: E402
from corral.records import JobRecord as JobRecord  # noqa: E402
from corral.registry import Selection as Selection  # noqa: E402
from corral.session import AsyncSession as AsyncSession  # noqa: E402
from corral.spec import JobSpec as JobSpec  # noqa: E402
from corral.states import JobState as JobState  # noqa: E402
