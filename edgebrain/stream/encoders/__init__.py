"""Encoders: turn source chunks into the model's input timesteps.

``basic`` (direct, delta, sigma-delta, rate), ``binning`` (event-camera frames) and ``frontend``
(audio filterbank). :func:`edgebrain.stream.registry.build_encoder` builds one from a spec string.
"""
