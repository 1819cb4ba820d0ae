"""Adds the licence notices of the libraries auditwheel bundled to a repaired wheel.

    python python/bundle_licenses.py dist/ringloader-*.whl

auditwheel copies each non-system library into ringloader.libs/ (renamed NAME-<hash>.so...).
Their licences (BSD, MIT, LGPL, ICU's...) ask that the notices travel with the binaries: for
each bundled library this finds the system file it was copied from, the Debian package that
installed it (dpkg -S) and that package's /usr/share/doc/PACKAGE/copyright, and adds it to the
wheel as <dist-info>/licenses/bundled/PACKAGE.copyright, with RECORD rewritten to match. A
library whose notice cannot be found is an error: the wheel must not ship without it.
"""
import base64
import glob
import hashlib
import os
import re
import subprocess
import sys
import zipfile

LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/lib")


def system_copy(bundled_name):
    """The system path auditwheel copied NAME-<hash>.so.X.Y from."""
    m = re.match(r"^(.+?)-[0-9a-f]{8}(\.so.*)$", bundled_name)
    if not m:
        raise SystemExit(f"bundle_licenses: cannot tell the original name of {bundled_name}")
    stem, suffix = m.groups()
    for d in LIB_DIRS:
        for cand in (os.path.join(d, stem + suffix), *sorted(glob.glob(os.path.join(d, stem + ".so*")))):
            if os.path.exists(cand):
                return os.path.realpath(cand)
    raise SystemExit(f"bundle_licenses: no system copy of {bundled_name} ({stem}{suffix}) to find its package")


def package_of(path):
    out = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
    if out.returncode != 0:  # merged /usr: dpkg may know the /lib spelling only
        alt = path.replace("/usr/lib/", "/lib/", 1)
        out = subprocess.run(["dpkg", "-S", alt], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bundle_licenses: dpkg does not know which package installed {path}")
    return out.stdout.split(":", 1)[0].strip()


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def main(wheel):
    with zipfile.ZipFile(wheel) as zf:
        entries = [(i, zf.read(i.filename)) for i in zf.infolist()]
    names = [i.filename for i, _ in entries]
    dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
    bundled = sorted({os.path.basename(n) for n in names if "/" in n and n.split("/")[0].endswith(".libs") and not n.endswith("/")})
    notices = {}
    for lib in bundled:
        pkg = package_of(system_copy(lib))
        pkg_doc = pkg.split(":")[0]
        path = f"/usr/share/doc/{pkg_doc}/copyright"
        if not os.path.exists(path):
            raise SystemExit(f"bundle_licenses: {lib} comes from {pkg}, which has no {path}")
        with open(path, "rb") as f:
            notices[f"{dist_info}/licenses/bundled/{pkg_doc}.copyright"] = f.read()
    index = (", ".join(sorted(notices)) + "\n").encode()
    readme = (b"Libraries bundled in ringloader.libs/ by auditwheel, from Debian's packages; each file here is\n"
              b"the Debian copyright notice of the package a bundled library came from:\n" + index)
    notices[f"{dist_info}/licenses/bundled/README"] = readme
    record_name = f"{dist_info}/RECORD"
    tmp = wheel + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        records = []
        for info, data in entries:
            if info.filename == record_name or info.filename in notices:
                continue
            out.writestr(info, data)
            if not info.is_dir():  # RECORD lists files only (auditwheel opens every entry in it)
                records.append(record_line(info.filename, data))
        for name, data in sorted(notices.items()):
            out.writestr(name, data)
            records.append(record_line(name, data))
        records.append(f"{record_name},,")
        out.writestr(record_name, "\n".join(records) + "\n")
    os.replace(tmp, wheel)
    print(f"bundle_licenses: {len(notices) - 1} notices for {len(bundled)} bundled libraries added to {os.path.basename(wheel)}")


if __name__ == "__main__":
    for w in sys.argv[1:]:
        main(w)
