namespace gpuorch::lifecycle {}
