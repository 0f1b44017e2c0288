"""Google Cloud plugins for metaflowlike: the ``gs`` Cloud Storage datastore
(``pip install "metaflowlike[gcp]"``).

Nothing is imported here so that listing plugins never loads the Google SDK."""
