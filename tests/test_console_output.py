"""What people read when stdout is not a terminal (a pipe, a log): nothing is wrapped or cut, each
table row and each sentence on one line, checked against the same commands' ``--json`` results;
on a terminal, lines still wrap at its width. And ``data info``'s units and plain lists."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from edgebrain import zoo
from edgebrain.card import ModelCard
from edgebrain.model import Model

from tests.conftest import REPO, need

NARROW = dict(os.environ, COLUMNS="80")  # a declared width must not wrap a pipe either


def cli(*args, env=NARROW, ok=(0,)):
    r = subprocess.run([sys.executable, "-m", "edgebrain.cli", *map(str, args)], capture_output=True, text=True,
                       cwd=REPO, timeout=600, env=env)
    assert r.returncode in ok, r.stderr
    return r.stdout


def one_line_with(text: str, *parts: str) -> str:
    """The one line of ``text`` holding every one of ``parts`` in order (fails otherwise)."""
    pat = re.compile(".*".join(map(re.escape, parts)))
    hits = [line for line in text.splitlines() if pat.search(line)]
    assert len(hits) == 1, (parts, text)
    return hits[0]


def test_zoo_list_rows_whole_on_one_line():
    out = cli("zoo", "list")
    rows = zoo.entries()
    assert rows
    for r in rows:
        one_line_with(out, f"│ {r['name']} ", r["title"], str(r["params"]), str(r["int8_bytes"]))
    assert "…" not in out


def test_fit_sentences_and_assumptions_each_on_one_line():
    args = ("devices", "fit", "zoo:nmnist", "--device", "stm32f446")
    res = json.loads(cli(*args, "--json", ok=(3,)))
    out = cli(*args, ok=(3,))
    lines = out.splitlines()
    one_line_with(out, "zoo:nmnist on stm32f446", "DOES NOT FIT")
    one_line_with(out, "RAM", "margin", "runtime")
    for a in res["assumptions"]:
        assert f"  - {a}" in lines, a
    for w in res["warnings"]:
        assert f"  warning: {w}" in lines, w


def test_inspect_rows_and_card_on_one_line():
    s = json.loads(cli("inspect", "zoo:kws", "--json"))
    out = cli("inspect", "zoo:kws")
    for n in s["nodes"]:
        one_line_with(out, f" {n['name']} ", n["kind"], str(tuple(n["in"])), str(tuple(n["out"])), str(n["params"]))
    card = ModelCard.from_meta(Model.load("zoo:kws").graph.meta)
    assert f"  data: {card.data}" in out.splitlines()


def test_demo_motion_lines_whole():
    res = json.loads(cli("demo", "motion", "--json"))
    out = cli("demo", "motion")
    one_line_with(out, "detected dialect", res["detected_because"])
    assert len([line for line in out.splitlines() if line.strip().startswith("t=")]) == len(res["decisions"])


def test_zoo_demo_lines_whole(datasets):
    need(datasets / "imu" / "sp-sw-har" / "s16")
    # the demo looks where a user's recordings are, not in the test fixtures: point it at them
    out = cli("demo", "har", "--items", "1", env=dict(NARROW, EDGEBRAIN_DATA=str(datasets)))
    # (the folder as the demo found it: a link to the datasets is not resolved, so only its end is compared)
    one_line_with(out, "edgebrain demo har: zoo:har-l2mu", "test recording from",
                  f"{datasets.name}/imu/sp-sw-har")
    one_line_with(out, "energy per decision (analytical", "`edgebrain profile` measures it")


def test_a_terminal_still_wraps_at_its_width():
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "edgebrain.cli", "zoo", "list"], cwd=REPO, stdout=slave,
                         stderr=subprocess.PIPE, env=dict(os.environ, COLUMNS="60", TERM="xterm"))
    os.close(slave)
    buf = b""
    while True:
        try:
            block = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not block:
            break
        buf += block
    os.close(master)
    assert p.wait(timeout=600) == 0
    lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.decode()).splitlines()
    assert lines and max(len(line.rstrip("\r")) for line in lines) <= 60
    assert any("zoo:" in line for line in lines)


# --------------------------------------------------------------------------- data info


def test_data_info_has_units_and_plain_lists(datasets):
    ev = need(datasets / "events" / "formats" / "sample.aedat4")
    res = json.loads(cli("data", "info", ev, "--json"))
    out = cli("data", "info", ev)
    w, h = res["sensor_size"]
    assert f"  sensor size: {w} × {h} pixels" in out.splitlines()
    assert f"  events: {res['items']}" in out.splitlines()
    d = re.search(r"^  duration: ([0-9.e+-]+) s$", out, re.M)
    assert d and float(d.group(1)) == pytest.approx(res["duration"], rel=1e-5)

    imu = need(datasets / "imu" / "sp-sw-har" / "s16" / "s16_01_sw.csv")
    res = json.loads(cli("data", "info", imu, "--json"))
    out = cli("data", "info", imu)
    lines = out.splitlines()
    assert f"  channels: {res['channels']} ({', '.join(res['channel_names'])})" in lines
    assert f"  labels: {', '.join(res['label_names'])}" in lines
    assert f"  samples: {res['items']} per channel" in lines
    r = re.search(r"^  rate: ([0-9.]+) Hz$", out, re.M)
    assert r and float(r.group(1)) == res["rate"]
    assert "[" not in out and "'" not in out  # no Python reprs
