namespace gpuorch::api {}
