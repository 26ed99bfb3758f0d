"""The pieces of ``deploy`` that need no server: target addresses, and the profile found from a board's
device-tree model (the strings below are what a Pi 4, a Pi 5 and a Jetson print in /proc/device-tree/model)."""

from __future__ import annotations

import shlex

import pytest


def test_target_addresses():
    from edgebrain.deploy.target import parse_target

    t = parse_target("ssh://pi@raspberrypi.local:2222/~/edge brain")
    assert (t.user, t.host, t.port, t.path) == ("pi", "raspberrypi.local", 2222, "edge brain")
    t = parse_target("ssh://jetson/opt/edgebrain%20app/")
    assert (t.user, t.host, t.port, t.path) == (None, "jetson", None, "/opt/edgebrain app")
    assert shlex.split(f"x {shlex.quote(t.path)}") == ["x", "/opt/edgebrain app"]


@pytest.mark.parametrize("board,profile", [("Raspberry Pi 4 Model B Rev 1.4", "rpi4b"),
                                           ("Raspberry Pi 5 Model B Rev 1.0", "rpi5"),
                                           ("NVIDIA Jetson Orin Nano Developer Kit", None),
                                           ("", None)])
def test_device_from_the_device_tree_model(board, profile):
    from edgebrain.deploy.deploy import detect_device

    d = detect_device({"board": board})
    assert (d.name if d is not None else None) == profile
