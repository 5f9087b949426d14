"""dentalai: asynchronous inference service for dental radiographs."""
