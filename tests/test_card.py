"""edgebrain.card: the typed stream configuration and model card, to and from graph.meta."""

from __future__ import annotations

import pytest

from edgebrain.card import ModelCard, StreamConfig
from edgebrain.errors import InputError


def test_stream_config_round_trip_keeps_keys_and_order():
    meta = {"stream": {"decoder": "count:window=25", "rate": 50, "custom": {"a": 1}, "encoder": "direct"}}
    cfg = StreamConfig.from_meta(meta)
    assert (cfg.encoder, cfg.decoder, cfg.rate, cfg.labels, cfg.extra) == ("direct", "count:window=25", 50, None,
                                                                           {"custom": {"a": 1}})
    assert list(cfg.to_meta().items()) == list(meta["stream"].items())
    assert cfg.dt == pytest.approx(0.02)


def test_stream_config_empty_and_defaults():
    cfg = StreamConfig.from_meta({})
    assert cfg.to_meta() == {} and cfg.dt is None
    assert cfg.class_names(3) == ["0", "1", "2"]
    assert StreamConfig(labels=[1, "b"]).class_names(2) == ["1", "b"]


def test_stream_config_updated_checks_and_appends_new_keys_in_order():
    cfg = StreamConfig.from_meta({"stream": {"rate": 10.0}})
    new = cfg.updated(2, decoder="count", labels=["a", "b"], encoder="delta")
    assert list(new.to_meta()) == ["rate", "encoder", "labels", "decoder"]
    assert cfg.to_meta() == {"rate": 10.0}  # the original is unchanged
    assert new.updated(2, rate=25).rate == 25.0
    with pytest.raises(InputError, match=r"^--class-names gives 3 names; the model has 2 outputs$"):
        cfg.updated(2, labels=["a", "b", "c"])
    with pytest.raises(InputError, match="gives 2 names"):
        cfg.updated(2, labels=["a", ""])
    with pytest.raises(InputError, match=r"^--rate 0; expected steps per second > 0$"):
        cfg.updated(2, rate=0)


def test_model_card_round_trip():
    assert ModelCard.from_meta({"card": {}}) is None and ModelCard.from_meta({}) is None
    d = {"title": "HAR", "data": "x", "results": [{"model": "m", "precision": "int8", "accuracy": 0.9}],
         "labels": ["a"], "results_note": "n"}
    card = ModelCard.from_meta({"card": d})
    assert card.title == "HAR" and card.extra == {"results_note": "n"} and card.activity == {}
    assert card.to_meta()["results"] == d["results"] and card.to_meta()["results_note"] == "n"
