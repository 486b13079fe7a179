"""The built wheel carries the profile library and works outside the source tree."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from gateway.smdr import profiles
from helpers import ROOT


@pytest.mark.parametrize("compiler, engine", [
    (None, "cython"),
    ("/bin/false", "python"),  # a machine without a C compiler: the reference engine
], ids=["with-compiler", "without-compiler"])
def test_wheel_ships_profiles_and_runs_from_an_install(tmp_path, compiler, engine):
    # Build from a copy of what git tracks: pip builds in the tree, and a build/ directory
    # left there by an earlier build would slip its files into this wheel.
    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    build_env = {**os.environ, **({"CC": compiler} if compiler else {})}
    build_env.pop("PBXGW_PUREPYTHON", None)  # the build itself must try the extension
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
                   check=True, capture_output=True, timeout=600, env=build_env)
    wheel = next(tmp_path.glob("pbxgw-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in profiles.bundled_names():
        for part in ("profile.toml", "samples.txt", "expected.jsonl"):
            assert f"gateway/firmware_profiles/pbx/{name}/{part}" in names
    for path in (ROOT / "firmware_profiles" / "headsets").glob("*.toml"):
        assert f"gateway/firmware_profiles/headsets/{path.name}" in names
    assert not any(n.endswith((".pyx", ".c")) for n in names)
    assert any(n.startswith("gateway/smdr/_smdr_c") and n.endswith(".so") for n in names) == (engine == "cython")
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "gateway").rglob("*.py")}
    assert modules <= names, f"left out of the wheel: {sorted(modules - names)}"

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    # -S: no site processing, so the editable install of this checkout (a .pth hook) stays
    # out; the dependencies come from site-packages, after the install under test.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])}
    env.pop("PBXGW_PUREPYTHON", None)
    version = subprocess.run([sys.executable, "-S", "-m", "gateway", "--version"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert f"parser engine: {engine}" in version.stdout
    probe = "import gateway.smdr._smdr_c as m" if engine == "cython" else "import gateway as m"
    where = subprocess.run([sys.executable, "-S", "-c", probe + "; print(m.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(target))
    run = subprocess.run([sys.executable, "-S", "-m", "gateway", "profiles", "test"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("ok ") == len(profiles.bundled_names())
    check = subprocess.run([sys.executable, "-S", "-m", "gateway", "check-config", str(ROOT / "docs" / "config.example.toml")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
