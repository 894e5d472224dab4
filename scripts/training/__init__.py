"""Training and evaluation of the project's own default NER model (MSRA, lstm-crf)."""
