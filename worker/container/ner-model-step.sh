#!/bin/sh
# One-shot model step (compose service "model"): put the model into the shared volume before
# any worker starts. A directory shipped in the image under /app/models/NAME is copied;
# otherwise the random-weight default model is generated. Idempotent: a complete model stays.
set -eu
name=${NER_MODEL_NAME:-lac-msra-lstm}
target=${NER_MODEL_DIR:-/models/$name}
shipped=/app/models/$name
if [ -f "$target/configuration.json" ] && [ -f "$target/pytorch_model.bin" ]; then
    echo "model-step: $target already holds a model"
    exit 0
fi
if [ -d "$shipped" ]; then
    tmp=$(mktemp -d "$(dirname "$target")/.model-XXXXXX")
    cp -a "$shipped/." "$tmp/"
    rm -rf "$target"
    mv "$tmp" "$target"
    echo "model-step: copied $shipped to $target"
    exit 0
fi
echo "model-step: no $shipped in the image; generating the random-weight default model"
exec python scripts/make_model.py "$target"
