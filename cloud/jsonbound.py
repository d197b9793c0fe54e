"""Bounded JSON: defined in gateway/jsonbound.py (the gateway reads the cloud's registry
and configuration entries with it too), re-exported here for the cloud."""

from __future__ import annotations

from gateway.jsonbound import MAX_DEPTH as MAX_DEPTH
from gateway.jsonbound import MAX_INT_DIGITS as MAX_INT_DIGITS
from gateway.jsonbound import REASON as REASON
from gateway.jsonbound import JsonError as JsonError
from gateway.jsonbound import loads as loads
from gateway.jsonbound import nesting_depth as nesting_depth
