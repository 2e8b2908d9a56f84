"""Builds the Python package through CMake: configures (once) and builds the `opal_python` target
in OPAL_BUILD_DIR (default build/, the folder scripts/build.sh uses, so an existing build is
reused), then packages build/python/opal with the stdlib in opal/stdlib, where the module finds it
(lang/resolve.cpp: the stdlib beside the object it was linked into)."""
import os
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)  # setup.cfg's egg_base, before any build


class CMakeBuild(build_py):
    def run(self):
        build = os.path.abspath(os.environ.get("OPAL_BUILD_DIR", os.path.join(ROOT, "build")))
        if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
            subprocess.check_call(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release"])
        subprocess.check_call(["cmake", "--build", build, "--target", "opal_python", "-j", str(os.cpu_count() or 1)])
        built = os.path.join(build, "python", "opal")
        if not any(f.startswith("_opal") for f in os.listdir(built)):
            raise RuntimeError(f"the CMake build in {build} made no opal._opal module (is pybind11-dev installed?)")
        target = os.path.join(self.build_lib, "opal")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(built, target, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(os.path.join(ROOT, "stdlib"), os.path.join(target, "stdlib"))


class BinaryDistribution(Distribution):
    def has_ext_modules(self):  # the wheel holds a compiled module: tag it for this platform
        return True


setup(packages=["opal"], package_dir={"opal": "bindings/python/opal"}, cmdclass={"build_py": CMakeBuild}, distclass=BinaryDistribution)
