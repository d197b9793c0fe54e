"""C2SP checkpoints and cosignatures: defined in gateway/checkpoint.py, so that the gateway checks
cosigned receipts with the same code (gateway/ never imports cloud/); re-exported here for the
cloud's modules."""

from gateway.checkpoint import *  # noqa: F403
from gateway.checkpoint import __all__ as __all__
