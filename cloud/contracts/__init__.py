"""The contracts' pure layer: rules, formats and the state tree; no storage, no HTTP."""
