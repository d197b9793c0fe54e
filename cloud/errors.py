"""The cloud's refusals and field checks: defined in gateway/refusal.py (the registry and
configuration formats the gateway reads raise them too), re-exported here for the cloud."""

from __future__ import annotations

from gateway.refusal import INT64_MAX as INT64_MAX
from gateway.refusal import Refused as Refused
from gateway.refusal import decimal_field as decimal_field
from gateway.refusal import hex_field as hex_field
from gateway.refusal import int_field as int_field
