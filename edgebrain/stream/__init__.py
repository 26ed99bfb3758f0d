"""Streaming: sources → encoders → session → decoders → sinks (see :mod:`edgebrain.stream.base`)."""

from .base import EVENT_DTYPE, Decision, Decoder, Encoder, Events, RepairStats, Samples, Sink, Source, SourceInfo, Steps
from .registry import build_decoder, build_encoder, build_sink, detect_format, open_source

__all__ = ["EVENT_DTYPE", "Decision", "Decoder", "Encoder", "Events", "RepairStats", "Samples", "Sink", "Source",
           "SourceInfo", "Steps", "build_decoder", "build_encoder", "build_sink", "detect_format", "open_source"]
