"""The checker's compiled core, an optional C extension (everything else is in pyproject.toml).

A machine without a C compiler still installs propworkload: the build of the extension
fails with a warning and the pure-Python checker is used (``propworkload --version`` says
which core is in use). ``PROPWORKLOAD_REQUIRE_COMPILED=1`` makes that failure an error
instead, as CI does.
"""

import os

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "propworkload._lincheck",
            sources=["src/propworkload/_lincheck.c"],
            optional=os.environ.get("PROPWORKLOAD_REQUIRE_COMPILED") != "1",
            extra_compile_args=["-O2"] if os.name == "posix" else [],
        )
    ]
)
