"""``--monitoring``: Prometheus metrics of the development server (TF Serving's path).

```none
GET /monitoring/prometheus/metrics      on the REST port, text format 0.0.4
:tensorflow:serving:request_count{front="rest|grpc", status="200|..."}   answers sent
:tensorflow:serving:request_latency_seconds_sum / _count{signature}      predict latency
keras_vae_rest_connections                                               open REST connections
```
"""

import collections
import threading

__all__ = ["Metrics"]


class Metrics:
    """Counters the front ends update; `prometheus_text` renders them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._answers = collections.Counter()
        self._latency = collections.defaultdict(lambda: [0.0, 0])

    def count_rest(self, method, status):
        """One REST answer (its HTTP status)."""
        with self._lock:
            self._answers[("rest", str(status))] += 1

    def count_grpc(self, code):
        """One gRPC answer (its status code name)."""
        with self._lock:
            self._answers[("grpc", str(code))] += 1

    def observe(self, signature, seconds):
        """One predict's latency."""
        with self._lock:
            entry = self._latency[signature]
            entry[0] += seconds
            entry[1] += 1

    def prometheus_text(self, http_server=None):
        """The metrics in Prometheus' text format."""
        lines = ["# TYPE :tensorflow:serving:request_count counter"]
        with self._lock:
            for (front, status), count in sorted(self._answers.items()):
                lines.append(f':tensorflow:serving:request_count{{front="{front}",'
                             f'status="{status}"}} {count}')
            lines.append("# TYPE :tensorflow:serving:request_latency_seconds summary")
            for signature, (total, count) in sorted(self._latency.items()):
                label = signature.replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f':tensorflow:serving:request_latency_seconds_sum'
                             f'{{signature="{label}"}} {total:.6f}')
                lines.append(f':tensorflow:serving:request_latency_seconds_count'
                             f'{{signature="{label}"}} {count}')
        if http_server is not None:
            lines.append("# TYPE keras_vae_rest_connections gauge")
            lines.append(f"keras_vae_rest_connections {http_server.active_connections}")
        return "\n".join(lines) + "\n"
