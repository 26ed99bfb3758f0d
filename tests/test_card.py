"""edgebrain.card: the typed stream configuration and model card, to and from graph.meta."""

from __future__ import annotations

import pytest

from edgebrain.card import ModelCard, StreamConfig
from edgebrain.errors import InputError, ModelError


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
    with pytest.raises(InputError, match=r"^--rate 0; expected steps per second > 0 and at most 1e\+06$"):
        cfg.updated(2, rate=0)


def test_model_card_round_trip():
    assert ModelCard.from_meta({"card": {}}) is None and ModelCard.from_meta({}) is None
    d = {"title": "HAR", "data": "x", "results": [{"model": "m", "precision": "int8", "accuracy": 0.9}],
         "labels": ["a"], "results_note": "n"}
    card = ModelCard.from_meta({"card": d})
    assert card.title == "HAR" and card.extra == {"results_note": "n"} and card.activity == {}
    assert card.to_meta()["results"] == d["results"] and card.to_meta()["results_note"] == "n"


# stored forms a hand-made model file may carry (issue 11, item 11), and what the error names
BAD_STREAMS = [
    ({"rate": "fast"}, "'meta.stream.rate' = 'fast'"),
    ({"rate": 1e300}, "'meta.stream.rate' = 1e+300"),
    ({"rate": -5}, "'meta.stream.rate' = -5"),
    ({"rate": 0}, "'meta.stream.rate' = 0"),
    ({"rate": True}, "'meta.stream.rate' = True"),
    ({"encoder": 5}, "'meta.stream.encoder' = 5"),
    ({"encoder": ""}, "'meta.stream.encoder' = ''"),
    ({"decoder": ["count"]}, "'meta.stream.decoder' = ['count']"),
    ({"labels": "abc"}, "'meta.stream.labels' = 'abc'"),
    ({"labels": ["a", ""]}, "'meta.stream.labels'"),
    ({"labels": ["a", "b", "c"]}, "'meta.stream.labels' has 3 class names; expected 2, one per model output"),
    ({"source_options": [1]}, "'meta.stream.source_options'"),
    ({"source_options": {"columns": {"x": 1}}}, "'meta.stream.source_options'"),
    ([1, 2], "'meta.stream' is [1, 2]; expected an object"),
]


@pytest.mark.parametrize("d,must", BAD_STREAMS, ids=[m for _, m in BAD_STREAMS])
def test_stream_config_check_meta_rejects_bad_types_and_ranges(d, must):
    with pytest.raises(ModelError) as ei:
        StreamConfig.check_meta(d, n_outputs=2)
    assert must in str(ei.value) and "expected" in str(ei.value), str(ei.value)


def test_stream_config_check_meta_accepts_what_convert_writes():
    StreamConfig.check_meta(None)
    StreamConfig.check_meta({"encoder": "direct:scale=0.5", "decoder": "count:window=25,hop=12", "labels": ["a", 1],
                             "rate": 50.0, "source_options": {"columns": "ax,ay", "skip": 1}, "custom": [1]}, 2)
    StreamConfig.check_meta({"rate": 1e6})
    with pytest.raises(InputError, match=r"^--rate inf; expected steps per second > 0 and at most 1e\+06$"):
        StreamConfig().updated(2, rate=float("inf"))


BAD_CARDS = [
    ([1, 2], "'meta.card' is [1, 2]; expected an object"),
    ({"results": [{"model": "m", "accuracy": 0.9}]}, "'meta.card.results[0]'"),
    ({"results": [{"model": "m", "precision": "int8", "accuracy": "high"}]}, "'meta.card.results[0]'"),
    ({"results": {"a": 1}}, "'meta.card.results'"),
    ({"title": 5}, "'meta.card.title' = 5; expected a string"),
    ({"latency_us": {"float": {"p50": 1.0}}}, "'meta.card.latency_us'"),
    ({"activity": {"mean_spike_activity": "x"}}, "'meta.card.activity'"),
    ({"accuracy": {"float": "0.9"}}, "'meta.card.accuracy'"),
    ({"confusion_int8": [[1, "x"]]}, "'meta.card.confusion_int8'"),
    ({"labels": [None]}, "'meta.card.labels'"),
]


@pytest.mark.parametrize("d,must", BAD_CARDS, ids=[m for _, m in BAD_CARDS])
def test_model_card_check_meta_rejects_what_readers_would_trip_on(d, must):
    with pytest.raises(ModelError) as ei:
        ModelCard.check_meta(d)
    assert must in str(ei.value), str(ei.value)


def test_model_card_check_meta_accepts_the_zoo_cards():
    from edgebrain import ebm, zoo

    for name in zoo.names():
        graph, _ = ebm.load(zoo.path(name))  # ebm.load runs the same check; call it directly too
        ModelCard.check_meta(graph.meta.get("card"))
        StreamConfig.check_meta(graph.meta.get("stream"))
