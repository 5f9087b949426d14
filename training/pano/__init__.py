"""Training of the pano tooth segmentation model (PyTorch, CPU). Never imported by the service."""
