"""The first steps of a box's life after power-on, shared by the ESP32 entry point
(device/main.py) and the benchmarks, so they measure what a box really does."""

import sys


def identity(config_path, secret_path):
    """Return (config, secret) read from their files. Raises config.ConfigError naming the
    bad key, or OSError for a missing file.

    Builds the signing table first, while the heap is still unfragmented, and then drops
    the configuration code, which is needed only once (a few KB of RAM on a box).
    """
    from device import config, schnorr

    cfg = config.load(config_path)
    secret = config.load_secret(secret_path)
    schnorr.pubkey(secret)
    del config
    sys.modules.pop("device.config", None)
    import device

    if hasattr(device, "config"):
        delattr(device, "config")
    return cfg, secret
