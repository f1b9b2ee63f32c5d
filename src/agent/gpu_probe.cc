namespace gpuorch::agent {}
