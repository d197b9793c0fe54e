"""Contracts: the pure layer (no storage, no HTTP) that the ledger, `verify --replay` and a
replaying witness share: did:key identities, the signed transaction format and its log entry,
the state tree and its root entry, and the contracts' rules.
"""
