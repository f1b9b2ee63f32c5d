// RequirementsFor: a job's offer requirements from its spec and its config JSON.
#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "domain/gpu.h"
#include "optimizer/ranking.h"

namespace gpuorch::optimizer {
namespace {

using Capacity = OfferRequirements::Capacity;
using nlohmann::json;

core::Error Invalid(std::string field, std::string message) {
  return core::Error{core::Code::kInvalidArgument, std::move(message), std::move(field),
                     "invalid_config"};
}

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

core::Result<Capacity> CapacityFrom(const json& value, const std::string& field) {
  if (value.is_boolean()) {
    return value.get<bool>() ? Capacity::kSpot : Capacity::kOnDemand;
  }
  if (value.is_string()) {
    if (auto capacity = ParseCapacity(Lower(value.get<std::string>()))) {
      return *capacity;
    }
  }
  return core::Fail(Invalid(field, field + " must be true, false, \"spot\", \"on_demand\" or "
                                           "\"spot_then_on_demand\""));
}

core::Result<double> NonNegativeNumber(const json& value, const std::string& field) {
  if (!value.is_number() || value.get<double>() < 0) {
    return core::Fail(Invalid(field, field + " must be a number >= 0"));
  }
  return value.get<double>();
}

core::Result<std::vector<std::string>> Regions(const json& config) {
  std::vector<std::string> regions;
  if (auto it = config.find("region"); it != config.end() && !it->is_null()) {
    if (!it->is_string()) {
      return core::Fail(Invalid("config.region", "config.region must be a string"));
    }
    if (!it->get<std::string>().empty()) {
      regions.push_back(it->get<std::string>());
    }
  }
  if (auto it = config.find("regions"); it != config.end() && !it->is_null()) {
    if (!it->is_array()) {
      return core::Fail(Invalid("config.regions", "config.regions must be an array of strings"));
    }
    for (const auto& region : *it) {
      if (!region.is_string()) {
        return core::Fail(Invalid("config.regions", "config.regions must be an array of strings"));
      }
      if (!region.get<std::string>().empty()) {
        regions.push_back(region.get<std::string>());
      }
    }
  }
  return regions;
}

core::Status ApplyConfig(const json& config, OfferRequirements& out) {
  if (auto it = config.find("spot"); it != config.end() && !it->is_null()) {
    GPUORCH_ASSIGN_OR_RETURN(out.capacity, CapacityFrom(*it, "config.spot"));
  }
  if (auto it = config.find("capacity"); it != config.end() && !it->is_null()) {
    GPUORCH_ASSIGN_OR_RETURN(out.capacity, CapacityFrom(*it, "config.capacity"));
  }
  if (auto it = config.find("max_price_per_hour"); it != config.end() && !it->is_null()) {
    GPUORCH_ASSIGN_OR_RETURN(out.max_price_per_hour,
                             NonNegativeNumber(*it, "config.max_price_per_hour"));
  }
  if (auto it = config.find("min_reliability"); it != config.end() && !it->is_null()) {
    GPUORCH_ASSIGN_OR_RETURN(double reliability,
                             NonNegativeNumber(*it, "config.min_reliability"));
    if (reliability > 1) {
      return core::Fail(Invalid("config.min_reliability", "config.min_reliability must be 0..1"));
    }
    out.min_reliability = reliability;
  }
  GPUORCH_ASSIGN_OR_RETURN(std::vector<std::string> regions, Regions(config));
  if (!regions.empty()) {
    out.regions = std::move(regions);
  }
  return core::Ok();
}

}  // namespace

core::Result<OfferRequirements> RequirementsFor(const domain::JobSpec& spec,
                                                const OfferRequirements& defaults) {
  OfferRequirements out = defaults;
  out.gpu_type = domain::CanonicalGpuType(spec.gpu_type);
  out.gpu_count = spec.gpu_count;
  out.memory_gb = spec.memory_gb;
  if (!spec.allowed_providers.empty()) {
    out.allowed_providers.clear();
    for (const auto& provider : spec.allowed_providers) {
      out.allowed_providers.push_back(Lower(provider));
    }
  }
  if (spec.config_json.empty()) {
    return out;
  }
  try {
    const json config = json::parse(spec.config_json);
    if (config.is_null()) {
      return out;
    }
    if (!config.is_object()) {
      return core::Fail(Invalid("config", "config must be a JSON object"));
    }
    GPUORCH_TRY(ApplyConfig(config, out));
  } catch (const json::exception& e) {
    return core::Fail(Invalid("config", std::string("config is not valid JSON: ") + e.what()));
  }
  return out;
}

}  // namespace gpuorch::optimizer
