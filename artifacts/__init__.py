"""Artifacts of a finished task: overlay PNG, PDF report, DICOM SR and Secondary Captures.

Pure like the pipelines (image + result in, bytes out; no Redis, no HTTP): the worker makes them
after the result (`make.make_artifacts`), the CLI writes them beside its JSON.
"""
