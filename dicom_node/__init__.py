"""The DICOM node (CONTRACT.md section 8, docs/dicom.md): `dentalai dicom`, a Storage SCP.

A PACS or an X-ray unit sends radiographs by C-STORE; each instance from a configured calling AE
title is routed by its tags to a task of that AE's client and stored and queued like a REST
submission (grpc_server/submission.py), before the C-STORE is answered. The worker analyses it;
the results go back to the PACS through the export schedule (grpc_server/exports.py).

- `routing.py`: the rules of `dicom.rules` compiled and applied to an instance's tags (pure);
- `instance.py`: the checks of a received data set, each with its DICOM status (`status.py`);
- `intake.py`: one received instance -> a task (or an acknowledged, counted non-task);
- `scp.py`: the pynetdicom server, its limits and handlers, and the process's `main`.
"""
