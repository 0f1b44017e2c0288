"""MLflow interop: ``@mlflow`` / ``--with mlflow`` logs runs to an MLflow tracking
server, and :func:`push_model` copies registered models into MLflow's Model Registry.

Only MLflow's public client (``mlflow.MlflowClient``) is used, imported when needed.
"""
