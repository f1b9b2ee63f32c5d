#include "store/sqlite/internal/instance_table.h"

#include <string_view>
#include <utility>

#include "store/sqlite/internal/row_codec.h"

namespace gpuorch::store::sqlite_internal {
namespace {

using domain::Instance;
using domain::InstanceState;
using domain::Offer;

// ReadInstance() reads the columns in this order.
constexpr std::string_view kInstanceColumns =
    "seq, id, provider, provider_instance_id, state, status_message, offer_json, spot, "
    "price_per_hour, owner, for_job_id, node_id, join_token_hash, created_at_ms, updated_at_ms, "
    "billing_started_at_ms, ready_at_ms, billing_ended_at_ms, last_busy_at_ms, "
    "idle_timeout_seconds";
constexpr size_t kInstanceColumnCount = 20;

std::string SelectInstancesSql(std::string_view tail) {
  return "SELECT " + std::string(kInstanceColumns) + " FROM instances " + std::string(tail);
}

// SQL for "the state is not terminal", from the domain's own list of terminal states.
const std::string& LiveStatesSql() {
  static const std::string sql = [] {
    std::string out = "state NOT IN (";
    bool first = true;
    for (auto state : {InstanceState::kRequested, InstanceState::kProvisioning,
                       InstanceState::kReady, InstanceState::kTerminating,
                       InstanceState::kTerminated, InstanceState::kFailed, InstanceState::kLost}) {
      if (domain::IsTerminal(state)) {
        out += (first ? "'" : ", '") + std::string(domain::ToString(state)) + "'";
        first = false;
      }
    }
    return out + ")";
  }();
  return sql;
}

nlohmann::json OfferToJson(const Offer& offer) {
  nlohmann::json j = {{"provider", offer.provider},
                      {"offer_id", offer.offer_id},
                      {"instance_type", offer.instance_type},
                      {"gpu_type", offer.gpu_type},
                      {"gpu_count", offer.gpu_count},
                      {"gpu_memory_gb", offer.gpu_memory_gb},
                      {"on_demand_price", offer.on_demand_price},
                      {"region", offer.region},
                      {"reliability", offer.reliability},
                      {"available", offer.available},
                      {"cpu_count", offer.cpu_count},
                      {"ram_gb", offer.ram_gb}};
  if (offer.spot_price) {
    j["spot_price"] = *offer.spot_price;
  }
  return j;
}

// Keys absent from the stored JSON keep the defaults of Offer, so rows outlive new fields.
Offer OfferFromJson(const nlohmann::json& j) {
  const Offer defaults;
  Offer offer;
  offer.provider = j.value("provider", defaults.provider);
  offer.offer_id = j.value("offer_id", defaults.offer_id);
  offer.instance_type = j.value("instance_type", defaults.instance_type);
  offer.gpu_type = j.value("gpu_type", defaults.gpu_type);
  offer.gpu_count = j.value("gpu_count", defaults.gpu_count);
  offer.gpu_memory_gb = j.value("gpu_memory_gb", defaults.gpu_memory_gb);
  offer.on_demand_price = j.value("on_demand_price", defaults.on_demand_price);
  if (auto it = j.find("spot_price"); it != j.end() && !it->is_null()) {
    offer.spot_price = it->get<double>();
  }
  offer.region = j.value("region", defaults.region);
  offer.reliability = j.value("reliability", defaults.reliability);
  offer.available = j.value("available", defaults.available);
  offer.cpu_count = j.value("cpu_count", defaults.cpu_count);
  offer.ram_gb = j.value("ram_gb", defaults.ram_gb);
  return offer;
}

core::Status CheckOffer(const Offer& offer) {
  for (auto [value, field] : {std::pair{offer.gpu_memory_gb, "offer.gpu_memory_gb"},
                              std::pair{offer.on_demand_price, "offer.on_demand_price"},
                              std::pair{offer.spot_price.value_or(0), "offer.spot_price"},
                              std::pair{offer.reliability, "offer.reliability"},
                              std::pair{offer.ram_gb, "offer.ram_gb"}}) {
    GPUORCH_TRY(CheckFinite(value, field));
  }
  return core::Ok();
}

core::Result<Instance> ReadInstance(const Statement& row) {
  Instance instance;
  instance.seq = row.Int64(0);
  instance.id = row.Text(1);
  instance.provider = row.Text(2);
  instance.provider_instance_id = row.Text(3);
  const std::string state = row.Text(4);
  std::optional<InstanceState> parsed = domain::ParseInstanceState(state);
  if (!parsed) {
    return core::Fail(core::Code::kInternal, "corrupt instance state '" + state + "'");
  }
  instance.state = *parsed;
  instance.status_message = row.Text(5);
  GPUORCH_ASSIGN_OR_RETURN(instance.offer,
                           DecodeJsonWith<Offer>(row.Text(6), "offer_json", &OfferFromJson));
  instance.spot = row.Int64(7) != 0;
  instance.price_per_hour = row.Double(8);
  instance.owner = row.Text(9);
  instance.for_job_id = row.Text(10);
  instance.node_id = row.Text(11);
  instance.join_token_hash = row.Text(12);
  instance.created_at = core::FromUnixMillis(row.Int64(13));
  instance.updated_at = core::FromUnixMillis(row.Int64(14));
  instance.billing_started_at = FromMillis(row.OptionalInt64(15));
  instance.ready_at = FromMillis(row.OptionalInt64(16));
  instance.billing_ended_at = FromMillis(row.OptionalInt64(17));
  instance.last_busy_at = FromMillis(row.OptionalInt64(18));
  instance.idle_timeout_seconds = row.Int64(19);
  return instance;
}

core::Result<std::optional<Instance>> ReadOptionalInstance(Statement& stmt) {
  return ReadFirstRow<Instance>(stmt, &ReadInstance);
}

core::Result<std::vector<Instance>> ReadAllInstances(Statement& stmt) {
  return ReadAllRows<Instance>(stmt, &ReadInstance);
}

// Overwrites the mutable columns of the row with `instance.seq`.
core::Status UpdateInstanceRow(Connection& db, const Instance& instance) {
  GPUORCH_TRY(CheckFinite(instance.price_per_hour, "price_per_hour"));
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare("UPDATE instances SET state = ?, status_message = ?, provider_instance_id = ?, "
                 "node_id = ?, join_token_hash = ?, price_per_hour = ?, updated_at_ms = ?, "
                 "billing_started_at_ms = ?, ready_at_ms = ?, billing_ended_at_ms = ?, "
                 "last_busy_at_ms = ? WHERE seq = ?"));
  stmt.Bind(1, domain::ToString(instance.state)).Bind(2, instance.status_message);
  stmt.Bind(3, instance.provider_instance_id).Bind(4, instance.node_id);
  stmt.Bind(5, instance.join_token_hash).Bind(6, instance.price_per_hour);
  stmt.Bind(7, core::ToUnixMillis(instance.updated_at));
  stmt.Bind(8, ToMillis(instance.billing_started_at)).Bind(9, ToMillis(instance.ready_at));
  stmt.Bind(10, ToMillis(instance.billing_ended_at)).Bind(11, ToMillis(instance.last_busy_at));
  stmt.Bind(12, instance.seq);
  return stmt.Run();
}

void ApplyFields(const InstanceUpdate& update, Instance& instance) {
  auto assign = [](const auto& from, auto& to) {
    if (from) {
      to = *from;
    }
  };
  assign(update.new_state, instance.state);
  assign(update.status_message, instance.status_message);
  assign(update.provider_instance_id, instance.provider_instance_id);
  assign(update.node_id, instance.node_id);
  assign(update.join_token_hash, instance.join_token_hash);
  assign(update.price_per_hour, instance.price_per_hour);
  assign(update.billing_started_at, instance.billing_started_at);
  assign(update.ready_at, instance.ready_at);
  assign(update.billing_ended_at, instance.billing_ended_at);
  assign(update.last_busy_at, instance.last_busy_at);
}

}  // namespace

core::Status InsertInstanceRow(Connection& db, const Instance& instance) {
  if (instance.id.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "a new instance needs an id", "id");
  }
  if (instance.state != InstanceState::kRequested) {
    return core::Fail(
        core::Code::kInvalidArgument,
        "a new instance must be requested, not " + std::string(domain::ToString(instance.state)),
        "state");
  }
  GPUORCH_TRY(CheckFinite(instance.price_per_hour, "price_per_hour"));
  GPUORCH_TRY(CheckOffer(instance.offer));
  GPUORCH_ASSIGN_OR_RETURN(std::string offer, EncodeJson(OfferToJson(instance.offer), "offer"));
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare("INSERT INTO instances(" + std::string(kInstanceColumns.substr(5)) + ") VALUES(" +
                 Placeholders(kInstanceColumnCount - 1) + ")"));
  stmt.Bind(1, instance.id).Bind(2, instance.provider).Bind(3, instance.provider_instance_id);
  stmt.Bind(4, domain::ToString(instance.state)).Bind(5, instance.status_message).Bind(6, offer);
  stmt.Bind(7, int64_t{instance.spot ? 1 : 0}).Bind(8, instance.price_per_hour);
  stmt.Bind(9, instance.owner).Bind(10, instance.for_job_id).Bind(11, instance.node_id);
  stmt.Bind(12, instance.join_token_hash);
  stmt.Bind(13, core::ToUnixMillis(instance.created_at));
  stmt.Bind(14, core::ToUnixMillis(instance.updated_at));
  stmt.Bind(15, ToMillis(instance.billing_started_at)).Bind(16, ToMillis(instance.ready_at));
  stmt.Bind(17, ToMillis(instance.billing_ended_at)).Bind(18, ToMillis(instance.last_busy_at));
  stmt.Bind(19, instance.idle_timeout_seconds);
  return stmt.Run();
}

core::Result<std::optional<Instance>> SelectInstanceById(Connection& db, const std::string& id) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt, db.Prepare(SelectInstancesSql("WHERE id = ?")));
  stmt.Bind(1, id);
  return ReadOptionalInstance(stmt);
}

core::Result<std::vector<Instance>> SelectInstances(Connection& db, const InstanceQuery& query) {
  const std::vector<InstanceState> states = Distinct(query.states);
  std::string where = "WHERE 1";
  if (!states.empty()) {
    where += " AND state IN (" + Placeholders(states.size()) + ")";
  }
  if (query.owner) {
    where += " AND owner = ?";
  }
  if (query.provider) {
    where += " AND provider = ?";
  }
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt,
                           db.Prepare(SelectInstancesSql(where + " ORDER BY seq ASC")));
  int index = 1;
  for (InstanceState state : states) {
    stmt.Bind(index++, domain::ToString(state));
  }
  if (query.owner) {
    stmt.Bind(index++, *query.owner);
  }
  if (query.provider) {
    stmt.Bind(index++, *query.provider);
  }
  return ReadAllInstances(stmt);
}

core::Result<std::optional<Instance>> SelectLiveInstanceByJoinTokenHash(Connection& db,
                                                                        const std::string& hash) {
  if (hash.empty()) {
    return std::optional<Instance>();
  }
  // The predicate repeats the partial index's WHERE so that SQLite may use the index.
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare(SelectInstancesSql("WHERE join_token_hash = ? AND join_token_hash <> '' AND " +
                                    LiveStatesSql() + " ORDER BY seq ASC LIMIT 1")));
  stmt.Bind(1, hash);
  return ReadOptionalInstance(stmt);
}

core::Result<Instance> CompareAndSetInstance(Connection& db, const InstanceUpdate& update,
                                             core::SystemTime now) {
  if (update.new_state && !domain::CanTransition(update.expected_state, *update.new_state)) {
    return core::Fail(core::Code::kFailedPrecondition,
                      std::string(domain::ToString(update.expected_state)) + " -> " +
                          std::string(domain::ToString(*update.new_state)) +
                          " is not a transition of the instance state machine",
                      "new_state");
  }
  GPUORCH_ASSIGN_OR_RETURN(std::optional<Instance> current,
                           SelectInstanceById(db, update.instance_id));
  if (!current) {
    return core::Fail(core::Code::kNotFound, "instance " + update.instance_id + " not found",
                      "instance_id");
  }
  Instance instance = std::move(*current);
  if (instance.state != update.expected_state) {
    return core::Fail(core::Code::kAborted,
                      "instance " + instance.id + " is " +
                          std::string(domain::ToString(instance.state)) + ", not " +
                          std::string(domain::ToString(update.expected_state)));
  }
  ApplyFields(update, instance);
  instance.updated_at = now;
  GPUORCH_TRY(UpdateInstanceRow(db, instance));
  // The row as a later read returns it (times in whole milliseconds).
  GPUORCH_ASSIGN_OR_RETURN(std::optional<Instance> stored, SelectInstanceById(db, instance.id));
  if (!stored) {
    return core::Fail(core::Code::kInternal, "instance " + instance.id + " vanished on update");
  }
  return std::move(*stored);
}

}  // namespace gpuorch::store::sqlite_internal
