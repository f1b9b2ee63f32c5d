#include "store/sqlite/internal/node_table.h"

#include <map>
#include <string_view>
#include <utility>

#include "store/sqlite/internal/row_codec.h"

namespace gpuorch::store::sqlite_internal {
namespace {

using domain::GpuDevice;

// ReadNode() reads the columns in this order.
constexpr std::string_view kNodeColumns =
    "id, instance_id, provider, hostname, gpus_json, labels_json, container_runtime, token_hash, "
    "state, registered_at_ms, updated_at_ms";

std::string SelectNodesSql(std::string_view tail) {
  return "SELECT " + std::string(kNodeColumns) + " FROM nodes " + std::string(tail);
}

nlohmann::json GpusToJson(const std::vector<GpuDevice>& gpus) {
  nlohmann::json out = nlohmann::json::array();
  for (const GpuDevice& gpu : gpus) {
    out.push_back({{"index", gpu.index},
                   {"name", gpu.name},
                   {"type", gpu.type},
                   {"memory_mb", gpu.memory_mb},
                   {"uuid", gpu.uuid}});
  }
  return out;
}

// Keys absent from the stored JSON keep the defaults of GpuDevice, so rows outlive new fields.
std::vector<GpuDevice> GpusFromJson(const nlohmann::json& j) {
  const GpuDevice defaults;
  std::vector<GpuDevice> gpus;
  for (const nlohmann::json& item : j.get_ref<const nlohmann::json::array_t&>()) {
    gpus.push_back(GpuDevice{.index = item.value("index", defaults.index),
                             .name = item.value("name", defaults.name),
                             .type = item.value("type", defaults.type),
                             .memory_mb = item.value("memory_mb", defaults.memory_mb),
                             .uuid = item.value("uuid", defaults.uuid)});
  }
  return gpus;
}

core::Result<NodeRecord> ReadNode(const Statement& row) {
  NodeRecord node;
  node.id = row.Text(0);
  node.instance_id = row.Text(1);
  node.provider = row.Text(2);
  node.hostname = row.Text(3);
  GPUORCH_ASSIGN_OR_RETURN(
      node.gpus, DecodeJsonWith<std::vector<GpuDevice>>(row.Text(4), "gpus_json", &GpusFromJson));
  GPUORCH_ASSIGN_OR_RETURN(
      node.labels, (DecodeJson<std::map<std::string, std::string>>(row.Text(5), "labels_json")));
  node.container_runtime = row.Int64(6) != 0;
  node.token_hash = row.Text(7);
  node.state = row.Text(8);
  node.registered_at = core::FromUnixMillis(row.Int64(9));
  node.updated_at = core::FromUnixMillis(row.Int64(10));
  return node;
}

}  // namespace

core::Status UpsertNodeRow(Connection& db, const NodeRecord& node) {
  if (node.id.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "a node needs an id", "id");
  }
  GPUORCH_ASSIGN_OR_RETURN(std::string gpus, EncodeJson(GpusToJson(node.gpus), "gpus"));
  GPUORCH_ASSIGN_OR_RETURN(std::string labels, EncodeJson(node.labels, "labels"));
  // An upsert, not INSERT OR REPLACE: the row keeps its seq, and with it its place among nodes
  // registered at the same time.
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare("INSERT INTO nodes(" + std::string(kNodeColumns) + ") VALUES(" + Placeholders(11) +
                 ") ON CONFLICT(id) DO UPDATE SET instance_id = excluded.instance_id, "
                 "provider = excluded.provider, hostname = excluded.hostname, "
                 "gpus_json = excluded.gpus_json, labels_json = excluded.labels_json, "
                 "container_runtime = excluded.container_runtime, "
                 "token_hash = excluded.token_hash, state = excluded.state, "
                 "registered_at_ms = excluded.registered_at_ms, "
                 "updated_at_ms = excluded.updated_at_ms"));
  stmt.Bind(1, node.id).Bind(2, node.instance_id).Bind(3, node.provider).Bind(4, node.hostname);
  stmt.Bind(5, gpus).Bind(6, labels).Bind(7, int64_t{node.container_runtime ? 1 : 0});
  stmt.Bind(8, node.token_hash).Bind(9, node.state);
  stmt.Bind(10, core::ToUnixMillis(node.registered_at));
  stmt.Bind(11, core::ToUnixMillis(node.updated_at));
  return stmt.Run();
}

core::Result<std::optional<NodeRecord>> SelectNodeById(Connection& db, const std::string& id) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt, db.Prepare(SelectNodesSql("WHERE id = ?")));
  stmt.Bind(1, id);
  return ReadFirstRow<NodeRecord>(stmt, &ReadNode);
}

core::Result<std::vector<NodeRecord>> SelectNodes(Connection& db) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt,
                           db.Prepare(SelectNodesSql("ORDER BY registered_at_ms, seq")));
  return ReadAllRows<NodeRecord>(stmt, &ReadNode);
}

}  // namespace gpuorch::store::sqlite_internal
