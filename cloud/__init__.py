"""PharmaSync cloud ledger: verifiable log, contracts, API and the command line."""
