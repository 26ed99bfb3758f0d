"""The applications behind the command line, each built on the libraries (model, devices, energy,
metrics, stream): among them ``edgebrain demo`` (:mod:`.demo`), ``bench`` (:mod:`.bench`),
``profile`` (:mod:`.profile`) and ``devices fit`` (:mod:`.fit`). No library imports an application.
"""
