"""``edgebrain deploy``: a model, edgebrain and its pinned dependencies installed on a Linux board over SSH
(docs/deploy.md).

* :mod:`.target`: the ``ssh://user@host[:port]/path`` address, the system OpenSSH client's command
  lines (timeouts, host keys verified, the user's ``--ssh-option``), and the probe of the target;
* :mod:`.bundle`: what is shipped (the edgebrain wheel, the model, the device profile, pinned
  requirements, the smoke test's input and expected hashes, a manifest of SHA-256s);
* :mod:`.smoke`: the smoke test itself, run here and on the target (``python -m edgebrain.deploy.smoke``);
* :mod:`.scripts`: the POSIX ``sh`` scripts run on the target (install, activate, roll back);
* :mod:`.deploy`: the steps in order, and ``--rollback``.

Nothing here is imported by ``import edgebrain``; the target runs only :mod:`.smoke`.
"""
