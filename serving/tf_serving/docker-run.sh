#!/usr/bin/env bash
# The same deployment as docker-compose.yml, as one `docker run`.
# Usage: serving/tf_serving/docker-run.sh OUT     (OUT: the folder export_all wrote)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "${1:-./out}" && pwd)
exec docker run --rm -p 8500:8500 -p 8501:8501 \
  -v "$out/savedmodel/vae:/models/vae:ro" \
  -v "$here/models.config:/models/models.config:ro" \
  -v "$here/batching_parameters.txt:/models/batching_parameters.txt:ro" \
  tensorflow/serving:2.21.0 \
  --port=8500 --rest_api_port=8501 \
  --model_config_file=/models/models.config \
  --model_config_file_poll_wait_seconds=60 \
  --allow_version_labels_for_unavailable_models=true \
  --enable_batching=true --batching_parameters_file=/models/batching_parameters.txt \
  --rest_api_num_threads=8 --rest_api_timeout_in_ms=30000
