"""PharmaSync sensor box: reading format, BIP-340 signatures and firmware (runs on MicroPython)."""
