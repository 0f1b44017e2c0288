from .cloud_servers import *  # noqa: F401,F403 - moto / Azurite / fake-gcs-server fixtures
from .flowrunner import make_flow  # noqa: F401
from .laptop import s3_project  # noqa: F401
from .remote_env import batch_service, kube_cluster, sdk_python  # noqa: F401
