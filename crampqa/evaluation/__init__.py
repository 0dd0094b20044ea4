"""Evaluation building blocks: retrieval metrics and question/BEIR dataset loaders."""
