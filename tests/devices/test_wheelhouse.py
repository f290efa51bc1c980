"""The host-side wheelhouse of ``devices setup``: ``pip download`` for the device's Python and
platform, not the host's (real pip, its configured index), and the wheels a user names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgebench.devices.setup import WheelTarget, download_wheelhouse, read_wheel
from edgebench.errors import EdgebenchError


def _manylinux_minors(name: str) -> set[int]:
    """The glibc minor versions a wheel's platform tags name (manylinux2014 is 2.17, 2010 2.12)."""
    legacy = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
    found = {int(m) for m in re.findall(r"manylinux_2_(\d+)_", name)}
    return found | {v for k, v in legacy.items() if f"{k}_" in name}


def test_the_wheelhouse_follows_the_device_glibc_not_the_hosts(tmp_path: Path) -> None:
    """An old board (glibc 2.17) gets a numpy wheel built for glibc <= 2.17, even where the host
    (and the newest numpy) want a newer one: the device's probe, not this host, picks the wheels."""
    old = WheelTarget("3.11", "cp", "x86_64", ("glibc", "2.17"))
    try:
        wheels = download_wheelhouse(["numpy"], old, tmp_path / "old")
    except EdgebenchError as exc:  # no index reachable from this host's pip at all
        pytest.skip(f"pip download cannot reach an index here: {exc}")
    (numpy,) = [w for w in wheels if w.name.startswith("numpy-")]
    assert "cp311" in numpy.name and "x86_64" in numpy.name
    assert min(_manylinux_minors(numpy.name)) <= 17, numpy.name
    assert read_wheel(numpy).modules == {"numpy"} and read_wheel(numpy).dist == "numpy"


def test_a_glibc_older_than_any_manylinux_is_refused(tmp_path: Path) -> None:
    impossible = WheelTarget("3.11", "cp", "x86_64", ("glibc", "2.3"))  # older than any manylinux
    with pytest.raises(EdgebenchError, match=r"^glibc 2.3 on the device: older than any manylinux wheel"):
        download_wheelhouse(["numpy"], impossible, tmp_path)
    assert not list(tmp_path.glob("*.whl"))  # never the host's wheels instead


def test_a_package_without_a_wheel_for_the_device_is_one_line(tmp_path: Path) -> None:
    target = WheelTarget("3.11", "cp", "x86_64", ("glibc", "2.36"))
    with pytest.raises(EdgebenchError) as info:
        download_wheelhouse(["edgebench-no-such-package-xyz"], target, tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("the host could not download wheels of edgebench-no-such-package-xyz")


def test_a_wheel_argument_that_is_not_a_wheel_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "onnxruntime_gpu.zip"
    bogus.write_bytes(b"not a wheel")
    with pytest.raises(EdgebenchError, match=r"^--wheel: expected a wheel file .* found 'onnxruntime_gpu.zip'$"):
        read_wheel(bogus)
