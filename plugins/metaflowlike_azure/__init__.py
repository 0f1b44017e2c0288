"""Azure plugins for metaflowlike: the ``azure`` Blob Storage datastore
(``pip install "metaflowlike[azure]"``).

Nothing is imported here so that listing plugins never loads the Azure SDK."""
