"""Registry changes: defined in gateway/registry_change.py (gateways follow the cloud's
registry and read the same entries), re-exported here for the cloud."""

from __future__ import annotations

from gateway.registry_change import ENTRY_REGISTRY as ENTRY_REGISTRY
from gateway.registry_change import MAX_REQUEST_BYTES as MAX_REQUEST_BYTES
from gateway.registry_change import MAX_SKEW as MAX_SKEW
from gateway.registry_change import MAX_TEXT as MAX_TEXT
from gateway.registry_change import OPS as OPS
from gateway.registry_change import TAG as TAG
from gateway.registry_change import Change as Change
from gateway.registry_change import RegistryError as RegistryError
from gateway.registry_change import open_request as open_request
from gateway.registry_change import parse_entry as parse_entry
from gateway.registry_change import sign_request as sign_request
