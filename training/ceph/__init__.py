"""Training of the ceph landmark model (PyTorch, CPU). Never imported by the service."""
