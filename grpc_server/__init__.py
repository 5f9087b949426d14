"""gRPC side of the service: AnalysisService, the Redis task store and queue, the worker."""
