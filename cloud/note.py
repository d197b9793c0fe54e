"""C2SP signed notes: defined in gateway/note.py, so that the gateway checks
cosigned receipts with the same code (gateway/ never imports cloud/); re-exported here for the
cloud's modules."""

from gateway.note import *  # noqa: F403
from gateway.note import __all__ as __all__
