// The fair scheduler's queue, indexed for incremental passes.
//
// Design. Queue order is (priority desc, owner's share key asc, seq asc), and the share key moves
// only for the user charged at MarkEnded (fair_share.h). Jobs are grouped into *sources*: one
// user's queued jobs of one *shape* (GPU type, count, per-GPU memory, selector, providers,
// container), each source ordered by (priority desc, seq asc), which a user's share cannot change.
// A source is filed under the key of its first job in two ordered sets: all sources (`heads()`) and
// its shape's sources (`Shape::heads`). Walking the queue in order is a lazy k-way merge over one
// or more such sets (OrderWalk): a source enters the merge only when the one filed before it is
// reached, so a walk that stops early costs what it visited. When a user is charged, only that
// user's sources are filed again: O(shapes of the user x log), never a re-sort of the queue.
//
// Jobs of one shape are interchangeable for every node filter, so when one cannot be placed neither
// can the rest, and capacity freed on a node concerns only the shapes that fit there: the pass
// looks at *dirty* shapes only (new jobs, woken jobs, quota room, capacity that fits them). A
// source whose user is over quota for its GPU count is unfiled until the user's GPUs in use drop.
// Jobs in retry backoff sleep outside any source until their not_before.
//
// Not thread-safe: owned by the scheduler's loop.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "scheduler/internal/cluster.h"
#include "scheduler/scheduler.h"

namespace gpuorch::scheduler::internal {

struct Shape;
struct Source;

struct QueuedJob {
  JobRequest req;
  int account = -1;
  Shape* shape = nullptr;
  Source* source = nullptr;  // null while asleep
  std::multimap<core::SystemTime, QueuedJob*>::iterator asleep;
};

// A job's place in queue order.
struct OrderKey {
  int neg_priority = 0;
  double share = 0;
  int64_t seq = 0;
  const void* tie = nullptr;

  bool operator<(const OrderKey& o) const {
    if (neg_priority != o.neg_priority) {
      return neg_priority < o.neg_priority;
    }
    if (share != o.share) {
      return share < o.share;
    }
    if (seq != o.seq) {
      return seq < o.seq;
    }
    return tie < o.tie;
  }
};

struct HeadKey {
  OrderKey key;
  Source* source = nullptr;
  bool operator<(const HeadKey& o) const { return key < o.key; }
};
using HeadSet = std::set<HeadKey>;

struct ByPrioritySeq {
  bool operator()(const QueuedJob* a, const QueuedJob* b) const {
    if (a->req.priority != b->req.priority) {
      return a->req.priority > b->req.priority;
    }
    if (a->req.seq != b->req.seq) {
      return a->req.seq < b->req.seq;
    }
    return a < b;
  }
};

struct ShapeKey {
  std::string gpu_type;
  int gpu_count = 0;
  double per_gpu_gb = 0;
  bool needs_container = false;
  std::map<std::string, std::string> node_selector;
  std::vector<std::string> providers;  // sorted

  auto operator<=>(const ShapeKey&) const = default;
};

struct Shape {
  ShapeKey key;
  JobRequest sample;  // a job of this shape, for the filters
  HeadSet heads;      // filed sources of this shape
  int jobs = 0;       // queued jobs of this shape, asleep ones included
  bool dirty = false;
  bool reservation_blocked = false;
  // Marks valid for one pass (compared with the pass number).
  uint64_t no_fit_pass = 0;    // a job of it fit nowhere, even ignoring the reservation
  uint64_t backfill_pass = 0;  // with backfill_tests: its jobs held back by the reservation
  int backfill_tests = 0;      // in that pass
  uint64_t preempt_failed_pass = 0;
  int preempt_failed_priority = 0;  // with preempt_failed_pass: no preemption at or below this
  uint64_t unschedulable_version = UINT64_MAX;  // Cluster::nodes_version() when found unschedulable
};

struct Source {
  int account = -1;
  Shape* shape = nullptr;
  std::set<QueuedJob*, ByPrioritySeq> jobs;
  HeadKey filed_as;
  HeadSet::iterator in_all;  // when filed: its entries in JobQueue::heads() and Shape::heads
  HeadSet::iterator in_shape;
  bool filed = false;
  bool blocked = false;  // owner over quota for this shape's GPU count
  bool touched = false;
};

class JobQueue {
 public:
  explicit JobQueue(Cluster& cluster) : cluster_(cluster) {}

  QueuedJob* Find(const std::string& job_id) const;
  size_t size() const { return jobs_.size(); }

  // Adds a job, replacing a queued one with the same id; its shape becomes dirty. A job with a
  // not_before sleeps until Wake() reaches it.
  QueuedJob& Add(JobRequest request);
  void Remove(QueuedJob* job);
  // Removes the job and hands its request over (it is about to run).
  JobRequest Take(QueuedJob* job);
  // Moves the sleepers whose not_before <= now into their sources; true when any woke.
  bool Wake(core::SystemTime now);

  // Applies what changed since the last call (accounts' quota room and share keys, jobs added and
  // taken): files, refiles and unfiles sources. When `watched_account` (the head's owner, whose
  // quota room backfill must leave to the head) changed, its shapes become dirty. REQUIRES: no
  // OrderWalk alive.
  void Sync(int watched_account = -1);
  const HeadSet& heads() const { return heads_; }
  OrderKey KeyOf(const QueuedJob& job) const;

  // Dirty shapes: the ones a pass looks at for jobs behind the head.
  void MarkDirty(Shape* shape);
  void MarkAllDirty();
  // Refiles every source of `account` at the next Sync() (its quota was replaced).
  void TouchAccount(int account);
  // Dirties the shapes with `gpu_type` (or any type) and at most `free` GPUs that `fits` accepts.
  void MarkDirtyFitting(const std::string& gpu_type, int free,
                        const std::function<bool(const JobRequest&)>& fits);
  // Dirties the shapes with a queued job of priority above `priority` (a job that low became
  // preemptible: they may preempt it).
  void MarkDirtyAbove(int priority);
  const std::vector<Shape*>& dirty() const { return dirty_; }
  void ClearDirty();
  // Shapes held back only by the reservation; dirtied again when it changes.
  void MarkReservationBlocked(Shape* shape);
  void DirtyReservationBlocked();

  // Views over every queued job, asleep and over-quota ones included.
  // The first `limit` jobs in queue order with their 1-based positions; a non-empty `owner` walks
  // the whole order but keeps only that owner's jobs.
  std::vector<std::pair<const QueuedJob*, int>> FirstInOrder(size_t limit,
                                                             std::string_view owner) const;
  int PositionOf(const QueuedJob& job) const;  // 1-based

 private:
  Shape* ShapeFor(const JobRequest& request);
  Source* SourceFor(int account, Shape* shape);
  void Enter(QueuedJob* job);
  void Leave(QueuedJob* job);
  void Forget(QueuedJob* job, const std::string& id);
  void Touch(Source* source);
  void Refile(Source* source);
  void DropShapeIfUnused(Shape* shape);
  std::vector<const Source*> AllSources() const;

  Cluster& cluster_;
  std::unordered_map<std::string, std::unique_ptr<QueuedJob>> jobs_;
  std::map<ShapeKey, std::unique_ptr<Shape>> shapes_;
  std::unordered_map<std::string, std::vector<Shape*>> shapes_by_type_;
  std::vector<std::unordered_map<Shape*, std::unique_ptr<Source>>> sources_;  // [account]
  std::vector<double> filed_share_;  // [account]: the share key its sources are filed under
  HeadSet heads_;
  std::multimap<core::SystemTime, QueuedJob*> asleep_;
  std::vector<Source*> touched_;
  std::vector<Shape*> dirty_;
  std::vector<Shape*> reservation_blocked_;
};

// Walks the jobs of the sources filed in one or more HeadSets in queue order (a lazy merge). The
// job last returned may be taken out of its source before the next call. REQUIRES: the sets stay
// unchanged while walking (JobQueue::Sync() waits until the walk is over).
class OrderWalk {
 public:
  explicit OrderWalk(const Cluster& cluster) : cluster_(cluster) {}
  void Add(const HeadSet& set);
  QueuedJob* Next();
  // Skips the rest of the source of the job last returned.
  void SkipSource() { skip_source_ = true; }
  // Skips the rest of that source and every source filed after it in its set (for a walk over
  // one shape's set: the rest of the shape).
  void SkipRestOfSet() { skip_source_ = skip_set_ = true; }

 private:
  struct Cursor {
    OrderKey key;
    const HeadSet* set = nullptr;
    HeadSet::const_iterator filed;  // the source's place in `set`
    std::set<QueuedJob*, ByPrioritySeq>::const_iterator next;
    const Source* source = nullptr;
    bool seeded = false;  // the source filed after it has joined the merge
    bool operator>(const Cursor& o) const { return o.key < key; }
  };
  void Push(Cursor cursor);
  Cursor Seed(const HeadSet& set, HeadSet::const_iterator filed) const;

  const Cluster& cluster_;
  std::vector<Cursor> heap_;
  std::optional<Cursor> current_;
  bool skip_source_ = false;
  bool skip_set_ = false;
};

}  // namespace gpuorch::scheduler::internal
