"""Sources: where a stream's raw data comes from, each format's parser beside its reader.

``imu`` (IMU CSV, WISDM, UEA .ts), ``audio`` (WAV, FLAC, microphone), ``events/`` (event-camera
files), ``live`` (serial/TCP/UDP line protocol) and ``livebin`` (binary formats over the same links).
Every source yields :class:`~edgebrain.stream.base.Samples` or :class:`~edgebrain.stream.base.Events`
chunks; :func:`edgebrain.stream.registry.open_source` picks one by file content or URL scheme.
"""
