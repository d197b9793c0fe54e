"""The one compiled part, optional: gateway/_batchverify.c (see gateway/batchverify.py).

Everything else is configured in pyproject.toml. Where no C compiler or Python headers are
found the build prints a warning and goes on; the gateway then checks one signature per
coincurve call, with the same verdicts."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gateway._batchverify",
            sources=["gateway/_batchverify.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
