namespace gpuorch::scheduler {}
