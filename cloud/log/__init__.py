"""The log and its formats: the RFC 6962 entry log, batch tiles, compact ranges."""
