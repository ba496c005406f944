"""The OTLP receiver behind ``spanlake serve``: OTLP/gRPC (``TraceService/Export``) and
OTLP/HTTP (``POST /v1/traces``) in, durable span rows out.

    from spanlake.exporter.receiver import Receiver, ReceiverConfig
    from spanlake.exporter.store import open_store

    with Receiver(open_store("sqlite:///spanlake.db"), ReceiverConfig(grpc_port=0)) as r:
        ...  # r.grpc_port, r.http_port

Requests are acknowledged only once their spans are durable in the store; status codes
follow the OTLP spec (see :mod:`spanlake.exporter.receiver._errors`).
"""

from spanlake.exporter.receiver._config import ReceiverConfig
from spanlake.exporter.receiver._metrics import Metrics
from spanlake.exporter.receiver._server import Receiver

__all__ = ["Metrics", "Receiver", "ReceiverConfig"]
