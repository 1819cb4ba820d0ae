"""A PEP 517 build backend for `pip install --no-build-isolation .`: it drives the same CMake
build as `make`, then packs build/pip/python/ringloader into a wheel. Standard library only, so
nothing has to be downloaded (this project installs from Debian's packages, not PyPI)."""
import base64
import hashlib
import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _project():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def _tag():
    impl = f"cp{sys.version_info.major}{sys.version_info.minor}"
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{impl}-{impl}-{plat}"


def _metadata(p):
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}", f"Version: {p['version']}",
             f"Summary: {p.get('description', '')}", f"Requires-Python: {p.get('requires-python', '')}"]
    lines += [f"Requires-Dist: {d}" for d in p.get("dependencies", [])]
    return "\n".join(lines) + "\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def _build(build_dir):
    jobs = str(os.cpu_count() or 2)
    subprocess.check_call(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                           "-DRINGLOADER_BUILD_TESTS=OFF", "-DRINGLOADER_BUILD_EXAMPLES=OFF",
                           "-DRINGLOADER_INSTALL=OFF", "-DRINGLOADER_BUILD_PYTHON=ON",
                           f"-DPython_EXECUTABLE={sys.executable}"])
    subprocess.check_call(["cmake", "--build", build_dir, "--target", "_ringloader", "-j", jobs])
    return os.path.join(build_dir, "python", "ringloader")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    p = _project()
    package = _build(os.path.join(ROOT, "build", "pip"))
    name, version = p["name"], p["version"]
    dist_info = f"{name}-{version}.dist-info"
    wheel_name = f"{name}-{version}-{_tag()}.whl"
    records = []

    def add(zf, arcname, data):
        zf.writestr(arcname, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        records.append(f"{arcname},sha256={digest},{len(data)}")

    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as zf:
        for fn in sorted(os.listdir(package)):
            if fn.endswith((".py", ".so")):
                with open(os.path.join(package, fn), "rb") as f:
                    add(zf, f"ringloader/{fn}", f.read())
        add(zf, f"{dist_info}/METADATA", _metadata(p).encode())
        add(zf, f"{dist_info}/WHEEL",
            f"Wheel-Version: 1.0\nGenerator: ringloader_build\nRoot-Is-Purelib: false\nTag: {_tag()}\n".encode())
        add(zf, f"{dist_info}/top_level.txt", b"ringloader\n")
        records.append(f"{dist_info}/RECORD,,")
        zf.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return wheel_name
