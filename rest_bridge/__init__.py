"""REST bridge: FastAPI app translating CONTRACT.md section 1 to the gRPC AnalysisService."""
