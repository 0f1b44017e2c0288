"""AWS plugins for metaflowlike: the ``s3`` datastore (``pip install "metaflowlike[aws]"``).

Nothing is imported here so that listing plugins never loads boto3."""
