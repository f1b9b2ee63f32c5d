#!/usr/bin/env bash
# GPU check for a machine with NVIDIA GPUs: runs the built service with GPUs discovered by nvidia-smi,
# submits a real CUDA job and a job that cannot fit, and records what the API answers.
# Usage: scripts/gpu-check.sh BIN_DIR OUT_DIR   (BIN_DIR holds gpuorch, gpuorch-shim and, for a
# machine without this project's libraries, a bundle made by scripts/make-bundle.sh)
set -uo pipefail
BIN=$(cd "$1" && pwd)
OUT=$2
mkdir -p "$OUT"
RUN=("$BIN/gpuorch")
if [ -x "$BIN/ld-linux-x86-64.so.2" ]; then
  RUN=("$BIN/ld-linux-x86-64.so.2" --library-path "$BIN" "$BIN/gpuorch")
fi
PORT=58086
DATA=$(mktemp -d)
nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits > "$OUT/nvidia-smi.csv" 2>&1
"${RUN[@]}" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" > "$OUT/service.log" 2>&1 &
SVC=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/health > /dev/null && break; sleep 0.1; done
TOKEN=$(cat "$DATA/admin.token")  # written by the service on its first start
api() { curl -s -X "$1" "http://127.0.0.1:$PORT$2" -H 'Content-Type: application/json' \
          -H "Authorization: Bearer $TOKEN" ${3:+-d "$3"}; }
api GET /api/v1/instances/local > "$OUT/instance.json"
cuda='import torch,os; print("CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES","")); print("devices", torch.cuda.device_count(), torch.cuda.get_device_name(0)); x=torch.randn(8192,8192,device="cuda",dtype=torch.bfloat16); torch.cuda.synchronize(); import time; t=time.time(); [x@x for _ in range(20)]; torch.cuda.synchronize(); dt=time.time()-t; print("bf16 TFLOP/s %.0f" % (20*2*8192**3/dt/1e12))'
body=$(python3 -c 'import json,sys; print(json.dumps({"name":"cuda-matmul","job_type":"custom","timeout_seconds":300,"config":{"gpu_type":"NVIDIA H200","gpu_count":1,"command":["python3","-c",sys.argv[1]]}}))' "$cuda")
job=$(api POST /api/v1/jobs/submit "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
big=$(api POST /api/v1/jobs/submit '{"name":"too-big","config":{"gpu_type":"H200","gpu_count":2,"command":"nvidia-smi"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 1 600); do
  s=$(api GET /api/v1/jobs/$job | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  case "$s" in succeeded|failed|timed_out|cancelled) break;; esac
  sleep 0.2
done
api GET /api/v1/jobs/$job > "$OUT/cuda-job.json"
api GET /api/v1/jobs/$job/logs > "$OUT/cuda-job.log"
api GET /api/v1/jobs/$big > "$OUT/too-big-job.json"
api DELETE /api/v1/jobs/$big > /dev/null
kill $SVC; wait $SVC
echo "instance:"; cat "$OUT/instance.json"; echo
echo "cuda job:"; python3 -c 'import json; j=json.load(open("'"$OUT"'/cuda-job.json")); print(j["status"], j["exit_code"], j["gpu_indices"])'
cat "$OUT/cuda-job.log"
echo "too-big job:"; python3 -c 'import json; j=json.load(open("'"$OUT"'/too-big-job.json")); print(j["status"], "|", j["status_message"])'
