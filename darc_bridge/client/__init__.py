"""OSC client for the daemon: the `darc-bridge client` command and a small Python API."""

from darc_bridge.client.client import ClientError, DarcClient, NoReply, new_job_id
from darc_bridge.client.status_file import StatusFile

__all__ = ["ClientError", "DarcClient", "NoReply", "StatusFile", "new_job_id"]
