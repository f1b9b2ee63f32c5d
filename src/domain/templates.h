// The built-in job templates of the public contract (llava-1.6-34b, llama-3.1-70b). A submit naming a
// template starts from its values; fields in the request override them. Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "domain/job.h"

namespace gpuorch::domain {

struct JobTemplate {
  std::string name;         // "llava-1.6-34b"
  std::string title;        // "LLaVA-1.6 34B Analysis"
  std::string description;
  JobSpec defaults;         // name, job_type and config values the template fills in

  bool operator==(const JobTemplate&) const = default;
};

const std::vector<JobTemplate>& BuiltinTemplates();
// The template named `name`, or nullptr.
const JobTemplate* FindTemplate(std::string_view name);

// The job types a submit may name.
const std::vector<std::string>& KnownJobTypes();

}  // namespace gpuorch::domain
