"""The optional compiled parser (native/_smdr_c.pyx and its .pxi files -> gateway.smdr._smdr_c).

pbxgw works without it: the build skips the extension when PBXGW_PUREPYTHON is set, when
Cython is missing, or when there is no C compiler, and gateway.smdr.engine then picks
the pure-Python reference.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Builds the extension if it can; says why not, and carries on, if it cannot."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure leaves the reference engine
            print(f"pbxgw: compiled parser not built ({exc}); the pure-Python engine will run",
                  file=sys.stderr)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"pbxgw: compiled parser not built ({exc}); the pure-Python engine will run",
                  file=sys.stderr)


def extensions():
    if os.environ.get("PBXGW_PUREPYTHON") or sys.implementation.name != "cpython":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("pbxgw: Cython not installed; the pure-Python engine will run", file=sys.stderr)
        return []
    from setuptools import Extension
    return cythonize([Extension("gateway.smdr._smdr_c", ["native/_smdr_c.pyx"], optional=True)],
                     compiler_directives={"language_level": "3"}, quiet=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
