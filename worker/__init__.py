"""NER worker: model backends, text handling and the HTTP service."""
