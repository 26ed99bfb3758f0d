"""Sources: where a stream's raw data comes from, each format's parser beside its reader.

Files: ``imu`` (IMU CSV, WISDM, UEA .ts; its line reader in ``imu_text``), ``audio`` (WAV, FLAC,
microphone; the WAV container and PCM codec in ``wav``), ``events/`` (event-camera files).
Live links (``serial://``, ``tcp://``, ``udp://``, opened in ``live``): ``livelines`` (the line
protocol of IMU data forwarders), ``livebin`` with ``livebin_audio`` and ``livebin_events``
(PCM/WAV and EVT/AEDAT 4 bytes over the same links), all standing on :mod:`edgebrain.stream.links`.
``imu_repair`` is the one repair policy of IMU rows, files and live lines alike.

Every source yields :class:`~edgebrain.stream.base.Samples` or :class:`~edgebrain.stream.base.Events`
chunks; :func:`edgebrain.stream.registry.open_source` picks one by file content or URL scheme.
Sources import nothing from the later stages (encoders, decoders, sinks, pipeline).
"""
