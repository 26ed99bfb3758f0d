"""``devices fit``'s assumptions say what its numbers are: the worst case (every input non-zero),
with synapses of zero weight not charged and every weight read, stated once and without a
contradiction; checked against a model whose zero weights are counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edgebrain import devices as D
from edgebrain.apps.fit import fit
from edgebrain.model import Model

from tests.conftest import REPO

EXAMPLE = REPO / "edgebrain" / "examples" / "motion_snntorch.nir"


def test_fit_assumptions_match_the_counts():
    m = Model.load(EXAMPLE)
    fc1, fc2 = m.graph.nodes["fc1"], m.graph.nodes["fc2"]
    fc1.weight[::2] = 0  # half of the first layer's synapses have a zero weight
    r = fit(m, D.load("rp2040"), "float")
    c = r["counts"]
    nonzero = np.count_nonzero(fc1.weight) + np.count_nonzero(fc2.weight)
    assert c["eff_macs"] + c["eff_acs"] == nonzero < c["dense"] == fc1.weight.size + fc2.weight.size
    # fc1 is fed by the model input (MACs), fc2 by the spikes of lif1 (ACs)
    assert c["eff_macs"] == np.count_nonzero(fc1.weight) and c["eff_acs"] == np.count_nonzero(fc2.weight)
    assert c["weight_bytes_read"] == 4 * (c["dense"] + fc1.bias.size + fc2.bias.size)  # every weight read
    e = r["energy"]["estimate"]
    assert e["breakdown_j"]["synaptic_mac_j"] == pytest.approx(c["eff_macs"] * e["per_op_pj"]["E_MAC"] * 1e-12)

    text = r["assumptions"]
    worst = [a for a in text if "worst case" in a]
    assert len(worst) == 1 and "every input taken as non-zero" in worst[0] and "non-zero weight" in worst[0]
    assert not any("every synapse active" in a or "zero inputs" in a for a in text)
    assert any("effective operations charged (synapses whose weight and input are both non-zero)" in a for a in text)
