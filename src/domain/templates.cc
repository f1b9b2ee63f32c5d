#include "domain/templates.h"

#include <algorithm>

namespace gpuorch::domain {

const std::vector<JobTemplate>& BuiltinTemplates() {
  static const std::vector<JobTemplate> templates = {
      JobTemplate{
          .name = "llava-1.6-34b",
          .title = "LLaVA-1.6 34B Analysis",
          .description = "LLaVA-1.6 34B vision-language model on 4 x RTX 4090 (96 GB)",
          .defaults = JobSpec{.name = "LLaVA-1.6 34B Analysis",
                              .job_type = "llava",
                              .template_name = "llava-1.6-34b",
                              .gpu_type = "RTX4090",
                              .gpu_count = 4,
                              .memory_gb = 96,
                              .docker_image = "aima/llava:1.6-34b",
                              .model_name = "llava-v1.6-34b"}},
      JobTemplate{
          .name = "llama-3.1-70b",
          .title = "Llama 3.1 70B Text Generation",
          .description = "Llama 3.1 70B text generation on 2 x RTX 4090 (48 GB)",
          .defaults = JobSpec{.name = "Llama 3.1 70B Text Generation",
                              .job_type = "llama",
                              .template_name = "llama-3.1-70b",
                              .gpu_type = "RTX4090",
                              .gpu_count = 2,
                              .memory_gb = 48,
                              .docker_image = "aima/llama:3.1-70b",
                              .model_name = "llama-3.1-70b"}},
  };
  return templates;
}

const JobTemplate* FindTemplate(std::string_view name) {
  for (const JobTemplate& t : BuiltinTemplates()) {
    if (t.name == name) {
      return &t;
    }
  }
  return nullptr;
}

const std::vector<std::string>& KnownJobTypes() {
  static const std::vector<std::string> types = {"custom",   "llava",     "llama",
                                                 "training", "inference", "batch"};
  return types;
}

}  // namespace gpuorch::domain
