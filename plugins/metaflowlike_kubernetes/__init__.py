"""Run steps as Kubernetes Jobs: ``@kubernetes`` and ``--with kubernetes``.

Needs the ``kubernetes`` extra (the official client) in the runtime's environment only;
the pods need a Python and the datastore's cloud SDK.
"""
